//! The agent's configuration: one local TOML file, `/etc/authtrail/agent.toml` by default.
//!
//! Every field has a default, so an empty file is a valid configuration. Unknown keys are errors
//! (a typo must not silently turn a setting off). Names are kebab-case.
//!
//! [`Config::load`] reads the file (refusing one that others can write) and reports TOML errors
//! with the line, the key and a suggestion for a misspelt key; [`Config::check`] adds the
//! semantic checks (each component's config type checks its own settings, this file the
//! top-level ones); [`default_sources`] picks the auth log when no `[[source]]` is configured.
//! `authtrail validate` and `authtrail sources` show the result. The annotated example is
//! `targets/agent.toml`.

use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::bytesize::ByteSize;
pub use crate::detect::DetectSettings;
pub use crate::ship::config::{
    BATCH_MAX_BYTES_LIMIT, BodyFormat, BufferConfig, BufferKind, CollectorAuthConfig,
    CollectorConfig, CollectorTlsConfig, Compression, RetryConfig, SpoolConfig, SpoolPolicy,
};
pub use crate::source::ReadFrom;
use crate::source::SourceProblem;
pub use crate::source::file::{AuditSourceConfig, FileSourceConfig};
pub use crate::source::journald::JournaldSourceConfig;
pub use crate::source::utmp::UtmpSourceConfig;
use crate::timezone::Zone;
#[cfg(test)]
use config_errors::MAX_ERRORS;
use config_errors::key_path;
pub(crate) use config_errors::{Key, KeyPath};

/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/authtrail/agent.toml";

/// Largest `max-line-bytes` accepted: 16 MiB. A bigger bound would let one line take more memory
/// than the whole event ring.
pub(crate) const MAX_LINE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Largest config file read, bytes. A config is a few KiB; this bounds what a mistaken
/// `--config /var/log/huge.log` can make the agent read.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where the agent keeps its id, checkpoints and spool. Must be absolute.
    /// Defaults to `/var/lib/authtrail`.
    pub state_dir: PathBuf,
    /// `host.hostname` on events whose line has no host field. Defaults to the system's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Zone of zone-less timestamps (`Nov 28 06:49:30`): `local`, `UTC` or `+HH:MM`.
    /// Defaults to `local`.
    pub timezone: Zone,
    /// Longest line kept, in bytes (1 to 16 MiB; `65536` or `64KiB`); longer lines are cut,
    /// flagged and counted. Defaults to 65536.
    pub max_line_bytes: ByteSize,
    /// Put the original log line in each event's `message`. Defaults to true.
    pub include_message: bool,
    /// The shortest time between two commits (spool write, checkpoint, fsync) of a live log
    /// when a detection alert or a full batch asks for one: an alert leaves at once unless the
    /// last commit is younger than this, so alerts close together share one commit. Events
    /// otherwise wait at most the sink's batch age. Defaults to 300 ms.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// The log sources. Defaults to the distribution's auth log (see [`default_sources`] and
    /// `authtrail sources`).
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Where events go. Defaults to `stdout`.
    pub sink: SinkConfig,
    /// The edge detections run on every event before it is shipped.
    pub detect: DetectSettings,
}

/// One `[[source]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Syslog text files.
    File(FileSourceConfig),
    /// The systemd journal, through `journalctl`.
    Journald(JournaldSourceConfig),
    /// wtmp/btmp binary login records.
    Utmp(UtmpSourceConfig),
    /// The Linux audit log (`/var/log/audit/audit.log`), read by the file source.
    Audit(AuditSourceConfig),
}

/// `[sink]`: where events go. Defaults to `stdout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// ECS NDJSON on standard output.
    #[default]
    Stdout,
    /// ECS NDJSON appended to a file (fsync'd before checkpoints advance).
    File {
        /// The file, absolute; its directory must exist. Required: no default.
        path: PathBuf,
    },
    /// Batches of ECS NDJSON, compressed, spooled to the state dir and shipped over HTTPS to an
    /// authtrail collector (or any receiver of compressed NDJSON over HTTP). See
    /// [`crate::ship`].
    Collector(Box<CollectorConfig>),
    /// The same batches, spool and transport, sent as OTLP/HTTP logs (`POST {url}/v1/logs`) to
    /// an OpenTelemetry receiver. See [`crate::ship::otlp`].
    Otlp(Box<CollectorConfig>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/authtrail"),
            hostname: None,
            timezone: Zone::Local,
            max_line_bytes: ByteSize(64 * 1024),
            include_message: true,
            commit_interval: Duration::from_millis(300),
            sources: Vec::new(),
            sink: SinkConfig::default(),
            detect: DetectSettings::default(),
        }
    }
}

/// Why a config was refused. Each message names the file (and line) or the source involved and
/// says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("cannot read config {}: {cause}{}", .path.display(), read_hint(.cause))]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the system said.
        #[source]
        cause: io::Error,
    },
    /// The file is bigger than [`MAX_CONFIG_BYTES`].
    #[error(
        "refusing config {}: it is over {MAX_CONFIG_BYTES} bytes, which no agent config needs; \
         is --config pointing at the right file?",
        .path.display()
    )]
    TooBig {
        /// The config file.
        path: PathBuf,
    },
    /// Group or others may write the file: whoever can write it can redirect or silence the
    /// agent.
    #[error(
        "refusing config {}: mode {mode:04o} lets {} write it; fix with `chmod 640 {}`",
        .path.display(), writers(*.mode), .path.display()
    )]
    Writable {
        /// The config file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to someone other than root and the agent's own user.
    #[error(
        "refusing config {}: owned by uid {owner}, not by root or the agent's user (uid {}); \
         fix with `chown root {}`",
        .path.display(), .user.map_or_else(|| "unknown".to_owned(), |u| u.to_string()),
        .path.display()
    )]
    Owner {
        /// The config file.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// The agent's effective uid, when it could be found.
        user: Option<u32>,
    },
    /// The text is not TOML, or a value has the wrong type or is missing.
    #[error("{at}: {}{message}", context(&.at.section, .key))]
    Syntax {
        /// Where.
        at: Box<Location>,
        /// The key on the offending line, when there is one.
        key: Option<String>,
        /// The parser's message (what was expected).
        message: String,
    },
    /// A key (or a value of an enumerated key, like `type` or `read-from`) that does not exist.
    #[error(
        "{at}: unknown {} `{found}`{}{}: {}",
        if *.is_value { "value" } else { "field" },
        .key.as_ref().map_or_else(String::new, |k| format!(" for `{k}`")),
        .at.section.as_ref().map_or_else(|| " at the top level".to_owned(), |s| format!(" in {s}")),
        suggest(.suggestion, .expected)
    )]
    Unknown {
        /// Where.
        at: Box<Location>,
        /// For an unknown value: the key it was given to.
        key: Option<String>,
        /// True for an unknown value, false for an unknown key.
        is_value: bool,
        /// What was written.
        found: String,
        /// The closest accepted name, if one is close.
        suggestion: Option<String>,
        /// Every accepted name.
        expected: Vec<String>,
    },
    /// A file or utmp source without `paths`.
    #[error(
        "{source_name}: `paths` is empty: list the files or globs to read, e.g. paths = [\"/var/log/auth.log\"]"
    )]
    NoPaths {
        /// `[[source]] #N (name)`.
        source_name: String,
    },
    /// A glob that does not parse.
    #[error("{source_name}: `paths` entry {pattern:?} is not a valid glob: {reason}")]
    BadGlob {
        /// `[[source]] #N (name)`.
        source_name: String,
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `max-line-bytes` of 0 or over [`MAX_LINE_BYTES_LIMIT`].
    #[error(
        "max-line-bytes = {value}: must be between 1 and {MAX_LINE_BYTES_LIMIT} (16 MiB); \
         the default is 65536"
    )]
    LineBound {
        /// The configured value.
        value: u64,
    },
    /// A `[detect]` value the detections cannot use.
    #[error("[detect] {0}")]
    Detect(String),
    /// A helper program that cannot be run.
    #[error("{key} = {:?}: {reason}", .path)]
    Program {
        /// Where the path is (`[[source]] #1 (journald) journalctl`).
        key: String,
        /// The configured program.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A semantic error, with the line of the key it is about.
    #[error("{at}: {error}")]
    At {
        /// Where.
        at: Box<Location>,
        /// What is wrong.
        error: Box<ConfigError>,
    },
    /// Two sources with the same (resolved) name would share checkpoints.
    #[error(
        "[[source]] #{first} and #{second} are both named `{name}`: give each a distinct `name` \
         (it keys checkpoints and status)"
    )]
    DuplicateName {
        /// The name.
        name: String,
        /// 1-based index of the first source.
        first: usize,
        /// 1-based index of the second.
        second: usize,
    },
    /// A source name that cannot be used in file names and status output.
    #[error(
        "[[source]] #{index}: name {name:?} must be 1 to 64 letters, digits, `.`, `_` or `-`, \
         and not start with `.`"
    )]
    BadName {
        /// 1-based index of the source.
        index: usize,
        /// The name.
        name: String,
    },
    /// A path that must be absolute is not.
    #[error("{key} = {:?}: must be an absolute path (starting with `/`)", .path)]
    RelativePath {
        /// Where the path is (`state-dir`, `[[source]] #1 (file) paths`).
        key: String,
        /// The path.
        path: String,
    },
    /// A count or interval of zero, which would disable or spin the source.
    #[error("{key} = 0: must be greater than zero")]
    Zero {
        /// Where the value is (`[[source]] #1 (file) poll-interval`).
        key: String,
    },
    /// Two keys that cannot be used together.
    #[error("{source_name}: set `{a}` or `{b}`, not both")]
    Conflict {
        /// `[[source]] #N (name)`.
        source_name: String,
        /// One key.
        a: &'static str,
        /// The other.
        b: &'static str,
    },
    /// `hostname = ""`: a field is absent when unknown, never empty.
    #[error("hostname = \"\": leave `hostname` out to use the system's name")]
    EmptyHostname,
    /// A `[sink] type = "collector"` setting that cannot work.
    #[error("[sink] {key}: {reason}")]
    Collector {
        /// The key (`url`, `tls.pin-sha256`...).
        key: &'static str,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// The file sink's directory is missing or not a directory.
    #[error("[sink] path = {:?}: {reason}", .path)]
    SinkPath {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// How the config's `type`-tagged tables (`[[source]]`, `[sink]`) read, for error locations.
#[derive(Debug)]
struct SourceTags;

impl config_errors::Tagged for SourceTags {
    fn neutral(&self, key: &[Key]) -> Option<&'static str> {
        match key {
            [Key::Name(s), Key::Index(_)] if s == "source" => Some("utmp"),
            [Key::Name(s)] if s == "sink" => Some("stdout"),
            _ => None,
        }
    }

    fn variant_error(
        &self,
        key: &[Key],
        tag: &str,
        table: config_errors::Spanned<config_errors::DeTable<'_>>,
    ) -> Option<(KeyPath, String)> {
        use config_errors::alone;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only read to find the error's key")]
        struct FileSink {
            path: PathBuf,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Stdout {}
        match (key, tag) {
            ([_, _], "file") => alone::<FileSourceConfig>(table),
            ([_, _], "journald") => alone::<JournaldSourceConfig>(table),
            ([_, _], "utmp") => alone::<UtmpSourceConfig>(table),
            ([_], "collector" | "otlp") => alone::<CollectorConfig>(table),
            ([_], "file") => alone::<FileSink>(table),
            ([_], "stdout") => alone::<Stdout>(table),
            _ => None,
        }
    }
}

impl Location {
    fn of(at: config_errors::Location, path: &Path) -> Location {
        Location {
            path: path.to_owned(),
            line: at.line,
            column: at.column,
            section: at.section,
        }
    }
}

impl ConfigError {
    /// A located TOML or type error of the file at `path`.
    fn from_parse(e: config_errors::Error, path: &Path) -> ConfigError {
        let at = Box::new(Location::of(e.at, path));
        match e.kind {
            config_errors::Kind::Syntax(message) => ConfigError::Syntax {
                at,
                key: e.key,
                message,
            },
            config_errors::Kind::Unknown {
                is_value,
                found,
                suggestion,
                expected,
            } => ConfigError::Unknown {
                at,
                key: e.key,
                is_value,
                found,
                suggestion,
                expected,
            },
        }
    }

    /// Where in the file the error is, when it is about a place in it.
    pub(crate) fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { at, .. }
            | ConfigError::Unknown { at, .. }
            | ConfigError::At { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Where in the config file a TOML error is. Displays as `path:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// The table (`[[source]] #2`, `[sink]`); `None` at the top level.
    pub section: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

fn read_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => {
            " (create it; an empty file means all defaults, and targets/agent.toml is an \
             annotated example)"
        }
        io::ErrorKind::PermissionDenied => " (run as root, or as the user that owns the file)",
        io::ErrorKind::InvalidData => " (the file must be UTF-8 text)",
        _ => "",
    }
}

fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

fn context(section: &Option<String>, key: &Option<String>) -> String {
    match (section, key) {
        (Some(s), Some(k)) => format!("{s} {k}: "),
        (Some(s), None) => format!("in {s}: "),
        (None, Some(k)) => format!("key `{k}`: "),
        (None, None) => String::new(),
    }
}

fn suggest(suggestion: &Option<String>, expected: &[String]) -> String {
    if let Some(s) = suggestion {
        return format!("did you mean `{s}`?");
    }
    if expected.is_empty() {
        return "no keys are accepted here".to_owned();
    }
    let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!("expected one of {}", list.join(", "))
}

impl Config {
    /// The settings that differ between the running configuration and a reloaded one but are
    /// applied only at start (by their names in the file). A reload (SIGHUP) applies the
    /// `[[source]]` list and `[detect]`; these need a restart.
    pub(crate) fn restart_only_changes(&self, reloaded: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        check("state-dir", self.state_dir != reloaded.state_dir);
        check("hostname", self.hostname != reloaded.hostname);
        check("timezone", self.timezone != reloaded.timezone);
        check(
            "max-line-bytes",
            self.max_line_bytes != reloaded.max_line_bytes,
        );
        check(
            "include-message",
            self.include_message != reloaded.include_message,
        );
        check(
            "commit-interval",
            self.commit_interval != reloaded.commit_interval,
        );
        check("[sink]", self.sink != reloaded.sink);
        changed
    }

    /// Reads the config file at `path`, refusing one that group or others may write, that
    /// belongs to neither root nor the agent's user, or that is over [`MAX_CONFIG_BYTES`].
    fn read(path: &Path) -> Result<String, ConfigError> {
        let read_err = |cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        };
        // Check the file we opened, not the path again (no window to swap it in between).
        let file = fs::File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(ConfigError::Writable {
                path: path.to_owned(),
                mode,
            });
        }
        let user = effective_uid();
        if meta.uid() != 0 && Some(meta.uid()) != user {
            return Err(ConfigError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                user,
            });
        }
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

    /// Reads and parses the config file at `path`.
    ///
    /// Refuses a file that group or others may write, or that belongs to neither root nor the
    /// agent's user. An empty file gives [`Config::default`]. Does not run the semantic checks.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_toml(&Config::read(path)?, path)
    }

    /// What the agent runs with: [`Config::load`], then the semantic checks, then
    /// [`Config::fill_default_sources`] for the file system at `root` (`/` in production).
    /// Returns the config and why its sources were chosen (`None` when configured), or every
    /// problem found. `authtrail validate` prints exactly this config.
    pub(crate) fn load_effective(
        path: &Path,
        root: &Path,
    ) -> Result<(Config, Option<String>), Vec<ConfigError>> {
        Config::load_effective_checking(path, root, true)
    }

    /// [`Config::load_effective`] without checking that helper programs (`journalctl`) can be
    /// run: for `authtrail sources`, which shows what it finds of them.
    pub(crate) fn load_effective_for_listing(
        path: &Path,
        root: &Path,
    ) -> Result<(Config, Option<String>), Vec<ConfigError>> {
        Config::load_effective_checking(path, root, false)
    }

    fn load_effective_checking(
        path: &Path,
        root: &Path,
        programs: bool,
    ) -> Result<(Config, Option<String>), Vec<ConfigError>> {
        let text = Config::read(path).map_err(|e| vec![e])?;
        let mut config = Config::check_inner(&text, path, programs)?;
        let why = config.fill_default_sources(root);
        // The buffer in effect, written out (`validate` prints it; `spool.enabled = false` is
        // the older spelling of `none`).
        if let SinkConfig::Collector(c) | SinkConfig::Otlp(c) = &mut config.sink {
            c.buffer.kind = Some(c.buffer_kind());
        }
        Ok((config, why))
    }

    /// Parses config text; `path` only names the file in errors. Stops at the first error
    /// (see [`Config::check`] for all of them). Does not run the semantic checks.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parsed = config_errors::parse::<Config>(text, &SourceTags);
        match (parsed.value, parsed.errors.into_iter().next()) {
            (_, Some(e)) => Err(ConfigError::from_parse(e, path)),
            (Some(config), None) => Ok(config),
            (None, None) => unreachable!("a parse without a config has an error"),
        }
    }

    /// Parses and validates config text in one pass: every error in the file (up to
    /// [`config_errors::MAX_ERRORS`]), each with its line: those of TOML and types first, then
    /// the semantic ones. `path` only names the file in errors.
    #[doc(hidden)] // A hook for the integration tests in agent/tests, not for other callers.
    pub fn check(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        Config::check_inner(text, path, true)
    }

    fn check_inner(text: &str, path: &Path, programs: bool) -> Result<Config, Vec<ConfigError>> {
        let mut parsed = config_errors::parse::<Config>(text, &SourceTags);
        let mut errors: Vec<ConfigError> = std::mem::take(&mut parsed.errors)
            .into_iter()
            .map(|e| ConfigError::from_parse(e, path))
            .collect();
        if let Some(config) = &parsed.value {
            for (key, error) in config.problems(programs) {
                if parsed.stepped_over(&key) {
                    continue;
                }
                errors.push(ConfigError::At {
                    at: Box::new(Location::of(parsed.locate(&key), path)),
                    error: Box::new(error),
                });
            }
        }
        // In the order of the file.
        errors.sort_by_key(|e| e.location().map(|at| (at.line, at.column)));
        match parsed.value {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    /// The config as TOML, every field written out (defaults included).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// [`Config::problems`] without their keys: what the unit tests check.
    #[cfg(test)]
    pub(crate) fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let errors: Vec<ConfigError> = self.problems(true).into_iter().map(|(_, e)| e).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Semantic checks that TOML types cannot express, and what `run` would find missing: the
    /// sink file's directory, the TLS and token files (read, and parsed), the `journalctl`
    /// program. Returns every problem found, not just the first, so an operator fixes them in
    /// one go, each with the key it is about. Each component's config type checks its own
    /// settings (`problems`); this adds the top-level ones and places each in the file.
    fn problems(&self, programs: bool) -> Vec<(KeyPath, ConfigError)> {
        let mut errors = Vec::new();
        if !self.state_dir.is_absolute() {
            errors.push((
                key_path!["state-dir"],
                ConfigError::RelativePath {
                    key: "state-dir".to_owned(),
                    path: self.state_dir.display().to_string(),
                },
            ));
        }
        if self.hostname.as_deref() == Some("") {
            errors.push((key_path!["hostname"], ConfigError::EmptyHostname));
        }
        let max_line = self.max_line_bytes.0;
        if max_line == 0 || max_line > MAX_LINE_BYTES_LIMIT as u64 {
            errors.push((
                key_path!["max-line-bytes"],
                ConfigError::LineBound { value: max_line },
            ));
        }
        let named = self.named_sources();
        for (i, (name, source)) in named.iter().enumerate() {
            let index = i + 1;
            if !valid_name(name) {
                errors.push((
                    key_path!["source", i, "name"],
                    ConfigError::BadName {
                        index,
                        name: name.clone(),
                    },
                ));
            }
            if let Some(j) = named[..i].iter().position(|(n, _)| n == name) {
                errors.push((
                    key_path!["source", i, "name"],
                    ConfigError::DuplicateName {
                        name: name.clone(),
                        first: j + 1,
                        second: index,
                    },
                ));
            }
            let label = format!("[[source]] #{index} ({name})");
            validate_source(i, &label, source, programs, &mut errors);
        }
        if let SinkConfig::File { path } = &self.sink {
            validate_sink_path(path, &mut errors);
        }
        if let SinkConfig::Collector(c) | SinkConfig::Otlp(c) = &self.sink {
            let otlp = matches!(self.sink, SinkConfig::Otlp(_));
            for (key, reason) in c.problems_as(otlp, true) {
                let mut at = key_path!["sink"];
                at.extend(key.split('.').map(Key::from));
                errors.push((at, ConfigError::Collector { key, reason }));
            }
        }
        errors.extend(
            self.detect
                .problems()
                .into_iter()
                .map(|m| (key_path!["detect"], ConfigError::Detect(m))),
        );
        if self.commit_interval.is_zero() {
            errors.push((
                key_path!["commit-interval"],
                ConfigError::Zero {
                    key: "commit-interval".to_owned(),
                },
            ));
        }
        for key in self.detect.zero_thresholds() {
            errors.push((
                key_path!["detect", key],
                ConfigError::Zero {
                    key: format!("[detect] {key}"),
                },
            ));
        }
        errors
    }

    /// The configured zone for zone-less timestamps.
    pub(crate) fn zone(&self) -> Zone {
        self.timezone
    }

    /// Each configured source with its resolved name (also written into its `name` field):
    /// an unnamed source is called after its type and its place among sources of that type,
    /// `file`, `file-2`, `journald`, `utmp`... Name sources explicitly when there are several of
    /// a type: removing the first would otherwise rename the others and so orphan their
    /// checkpoints.
    ///
    /// With no `[[source]]` configured this is empty; call [`Config::fill_default_sources`]
    /// first.
    pub(crate) fn named_sources(&self) -> Vec<(String, SourceConfig)> {
        let mut seen = [0usize; 4];
        self.sources
            .iter()
            .map(|source| {
                let slot = match source {
                    SourceConfig::File(_) => 0,
                    SourceConfig::Journald(_) => 1,
                    SourceConfig::Utmp(_) => 2,
                    SourceConfig::Audit(_) => 3,
                };
                seen[slot] += 1;
                let name = match source.name() {
                    Some(n) => n.to_owned(),
                    None if seen[slot] == 1 => source.kind().to_owned(),
                    None => format!("{}-{}", source.kind(), seen[slot]),
                };
                let mut source = source.clone();
                source.set_name(name.clone());
                (name, source)
            })
            .collect()
    }

    /// With no `[[source]]` configured, sets the sources to [`default_sources`] for the file
    /// system at `root` (`/` in production) and returns why they were chosen; otherwise leaves
    /// the config alone and returns `None`.
    pub(crate) fn fill_default_sources(&mut self, root: &Path) -> Option<String> {
        if !self.sources.is_empty() {
            return None;
        }
        let (sources, why) = default_sources(root);
        self.sources = sources;
        Some(why)
    }
}

impl SourceConfig {
    /// `file`, `journald` or `utmp`: the `type` key.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::Journald(_) => "journald",
            SourceConfig::Utmp(_) => "utmp",
            SourceConfig::Audit(_) => "audit",
        }
    }

    /// The configured name, if any (see [`Config::named_sources`] for the resolved one).
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            SourceConfig::File(c) => c.name.as_deref(),
            SourceConfig::Journald(c) => c.name.as_deref(),
            SourceConfig::Utmp(c) => c.name.as_deref(),
            SourceConfig::Audit(c) => c.name.as_deref(),
        }
    }

    fn set_name(&mut self, name: String) {
        match self {
            SourceConfig::File(c) => c.name = Some(name),
            SourceConfig::Journald(c) => c.name = Some(name),
            SourceConfig::Utmp(c) => c.name = Some(name),
            SourceConfig::Audit(c) => c.name = Some(name),
        }
    }
}

/// Longest source name: it becomes part of checkpoint file names.
const MAX_NAME_LEN: usize = 64;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Adds one `[[source]]`'s problems (found by its config type) to `errors`, placed at
/// `source[i]` and worded with its `label`.
fn validate_source(
    i: usize,
    label: &str,
    source: &SourceConfig,
    programs: bool,
    errors: &mut Vec<(KeyPath, ConfigError)>,
) {
    let problems = match source {
        SourceConfig::File(c) => c.problems(),
        SourceConfig::Utmp(c) => c.problems(),
        SourceConfig::Audit(c) => c.problems(),
        SourceConfig::Journald(c) => c.problems(programs),
    };
    for (key, problem) in problems {
        let error = match problem {
            SourceProblem::NoPaths => ConfigError::NoPaths {
                source_name: label.to_owned(),
            },
            SourceProblem::RelativePath { what, path } => ConfigError::RelativePath {
                key: format!("{label} {what}"),
                path,
            },
            SourceProblem::BadGlob { pattern, reason } => ConfigError::BadGlob {
                source_name: label.to_owned(),
                pattern,
                reason,
            },
            SourceProblem::Zero => ConfigError::Zero {
                key: format!("{label} {key}"),
            },
            SourceProblem::Program { path, reason } => ConfigError::Program {
                key: format!("{label} {key}"),
                path,
                reason,
            },
            SourceProblem::Conflict { a, b } => ConfigError::Conflict {
                source_name: label.to_owned(),
                a,
                b,
            },
        };
        errors.push((key_path!["source", i, key], error));
    }
}

fn validate_sink_path(path: &Path, errors: &mut Vec<(KeyPath, ConfigError)>) {
    if !path.is_absolute() {
        errors.push((
            key_path!["sink", "path"],
            ConfigError::RelativePath {
                key: "[sink] path".to_owned(),
                path: path.display().to_string(),
            },
        ));
        return;
    }
    if path.is_dir() {
        errors.push((
            key_path!["sink", "path"],
            ConfigError::SinkPath {
                path: path.to_owned(),
                reason: "is a directory; name a file in it".to_owned(),
            },
        ));
        return;
    }
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        errors.push((
            key_path!["sink", "path"],
            ConfigError::SinkPath {
                path: path.to_owned(),
                reason: "names no file".to_owned(),
            },
        ));
        return;
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => errors.push((
            key_path!["sink", "path"],
            ConfigError::SinkPath {
                path: path.to_owned(),
                reason: format!("{} is not a directory", dir.display()),
            },
        )),
        Err(e) => errors.push((
            key_path!["sink", "path"],
            ConfigError::SinkPath {
                path: path.to_owned(),
                reason: format!(
                    "its directory {} cannot be used ({e}); create it (`mkdir -p {}`)",
                    dir.display(),
                    dir.display()
                ),
            },
        )),
    }
}

/// The process's effective uid, from `/proc/self/status` (std has no `geteuid`, and this crate
/// has no `unsafe` to call libc with). `None` where `/proc` is not mounted.
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    // Real, effective, saved, filesystem.
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The sources to read when none is configured, for the file system under `root` (`/` in
/// production; a temporary directory in tests), and why they were chosen (one line per choice).
///
/// The auth log:
/// 1. `/var/log/auth.log` exists: a file source on it (Debian, Ubuntu and their syslog layout);
/// 2. else `/var/log/secure` exists: a file source on it (RHEL, Fedora, Amazon Linux; SUSE
///    when its rsyslog is set up that way);
/// 3. else neither exists yet: `/etc/os-release` decides. A Debian-like or RHEL-like system
///    with a syslog daemon installed (rsyslog, syslog-ng) will create its file at the first
///    login, so that file is chosen (the file source picks it up when it appears). Otherwise
///    (a fresh Debian 12+ without rsyslog, SUSE, Arch, unknown) the journal is the only auth
///    log: journald.
///
/// Login records: when `/var/log/wtmp` exists a utmp source on wtmp and btmp is added. It adds
/// what the auth log lacks (the terminal, logouts, console logins); logins that sshd also
/// reports arrive twice, once tagged `event.provider = "utmp"`, so downstream can de-duplicate.
/// Systems that moved to wtmpdb (no `/var/log/wtmp`) get no utmp source.
pub(crate) fn default_sources(root: &Path) -> (Vec<SourceConfig>, String) {
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    // The rotated copy is followed too, so lines written just before a rotation that happens
    // while the agent is stopped are still read (the file source knows it by identity and does
    // not read it twice). Only the uncompressed copy: Debian's `delaycompress` keeps
    // `auth.log.1` plain, RHEL's `dateext` names it `secure-YYYYMMDD`.
    let file = |p: &str| {
        let rotated = if p.ends_with("secure") {
            format!("{p}-{}", "[0-9]".repeat(8))
        } else {
            format!("{p}.1")
        };
        SourceConfig::File(FileSourceConfig {
            paths: vec![p.to_owned(), rotated],
            ..FileSourceConfig::default()
        })
    };
    let mut sources = Vec::new();
    let mut why = Vec::new();
    if under("/var/log/auth.log").exists() {
        sources.push(file("/var/log/auth.log"));
        why.push("/var/log/auth.log exists (the Debian/Ubuntu auth log): file source on it".into());
    } else if under("/var/log/secure").exists() {
        sources.push(file("/var/log/secure"));
        why.push(
            "/var/log/secure exists (the RHEL/Fedora/SUSE auth log): file source on it".into(),
        );
    } else {
        let os = OsRelease::read(root);
        let syslog = ["/etc/rsyslog.conf", "/etc/syslog-ng/syslog-ng.conf"]
            .into_iter()
            .find(|p| under(p).exists());
        let family = os.family();
        match (family, syslog) {
            (Family::Debian, Some(conf)) => {
                sources.push(file("/var/log/auth.log"));
                why.push(format!(
                    "no auth log yet, but {} is Debian-like and {conf} exists: file source on \
                     /var/log/auth.log, read once the syslog daemon creates it",
                    os.describe()
                ));
            }
            (Family::RedHat, Some(conf)) => {
                sources.push(file("/var/log/secure"));
                why.push(format!(
                    "no auth log yet, but {} is RHEL-like and {conf} exists: file source on \
                     /var/log/secure, read once the syslog daemon creates it",
                    os.describe()
                ));
            }
            _ => {
                sources.push(SourceConfig::Journald(JournaldSourceConfig::default()));
                let mut line = format!(
                    "neither /var/log/auth.log nor /var/log/secure exists and {} {}: journald",
                    os.describe(),
                    match (family, syslog) {
                        (Family::Suse, _) => "logs authentication to the journal",
                        (_, None) => "has no syslog daemon configured",
                        _ => "has no known auth log file",
                    }
                );
                let journal = [
                    "/run/systemd/system",
                    "/var/log/journal",
                    "/run/log/journal",
                ];
                if !journal.iter().any(|p| under(p).exists()) {
                    line.push_str(
                        " (but no systemd journal was found either: configure a [[source]] \
                         for this system's auth log)",
                    );
                }
                why.push(line);
            }
        }
    }
    // auditd's log is root-only (0600, group adm on Debian): on only where the agent can read it.
    let audit_log = under("/var/log/audit/audit.log");
    if std::fs::File::open(&audit_log).is_ok() {
        sources.push(SourceConfig::Audit(AuditSourceConfig::default()));
        why.push(
            "/var/log/audit/audit.log exists and is readable: audit source on it (USER_AUTH, \
             USER_LOGIN, account changes; logins also in the auth log arrive from both)"
                .into(),
        );
    } else if audit_log.exists() {
        why.push(
            "/var/log/audit/audit.log exists but this user cannot read it: no audit source".into(),
        );
    }
    if under("/var/log/wtmp").exists() {
        sources.push(SourceConfig::Utmp(UtmpSourceConfig::default()));
        why.push(
            "/var/log/wtmp exists: utmp source on /var/log/wtmp and /var/log/btmp (terminal \
             logins, logouts, failed logins); logins also in the auth log arrive twice, the \
             utmp copy tagged event.provider = \"utmp\""
                .into(),
        );
    } else {
        why.push("no /var/log/wtmp (absent, or replaced by wtmpdb): no utmp source".into());
    }
    (sources, why.join("\n"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Debian,
    RedHat,
    Suse,
    Other,
}

/// The `ID`, `ID_LIKE` and `PRETTY_NAME` of os-release(5).
#[derive(Debug, Default)]
struct OsRelease {
    id: String,
    id_like: String,
    pretty_name: String,
}

impl OsRelease {
    fn read(root: &Path) -> OsRelease {
        let text = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| fs::read_to_string(root.join(p)).ok())
            .unwrap_or_default();
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
            match k.trim() {
                "ID" => os.id = v,
                "ID_LIKE" => os.id_like = v,
                "PRETTY_NAME" => os.pretty_name = v,
                _ => {}
            }
        }
        os
    }

    fn family(&self) -> Family {
        let ids: Vec<&str> = std::iter::once(self.id.as_str())
            .chain(self.id_like.split_whitespace())
            .collect();
        let any = |names: &[&str]| ids.iter().any(|id| names.contains(id));
        // SUSE before RHEL: openSUSE lists `fedora` in ID_LIKE on some releases.
        if any(&["suse", "opensuse", "sles", "sled"]) || self.id.starts_with("opensuse") {
            Family::Suse
        } else if any(&["debian", "ubuntu"]) {
            Family::Debian
        } else if any(&[
            "rhel",
            "fedora",
            "centos",
            "rocky",
            "almalinux",
            "amzn",
            "ol",
        ]) {
            Family::RedHat
        } else {
            Family::Other
        }
    }

    fn describe(&self) -> String {
        if !self.pretty_name.is_empty() {
            format!("this system ({})", self.pretty_name)
        } else if !self.id.is_empty() {
            format!("this system ({})", self.id)
        } else {
            "this system (no /etc/os-release)".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reload_names_the_settings_that_need_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(old.restart_only_changes(&new).is_empty());
        new.sources.clear();
        new.detect.enabled = !old.detect.enabled;
        new.detect.brute_force_threshold = 3;
        assert!(
            old.restart_only_changes(&new).is_empty(),
            "sources and detections apply on reload"
        );
        new.timezone = "+02:00".parse().unwrap();
        new.include_message = !old.include_message;
        new.sink = SinkConfig::File {
            path: "/var/log/authtrail.ndjson".into(),
        };
        assert_eq!(
            old.restart_only_changes(&new),
            ["timezone", "include-message", "[sink]"]
        );
    }

    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use config_errors::{closest, line_key};

    const EXAMPLE: &str = include_str!("../../targets/agent.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/authtrail/agent.toml"))
    }

    fn write_config(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("agent.toml");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "", 0o600);
        let config = Config::load(&path).unwrap();
        assert_eq!(config, Config::default());
        config.validate().unwrap();
        // Comments and blank lines only: still all defaults.
        assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
    }

    #[test]
    fn refuses_config_writable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "", 0o666);
        let err = Config::load(&path).unwrap_err();
        assert!(
            matches!(err, ConfigError::Writable { mode: 0o666, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("0666"), "{msg}");
        assert!(msg.contains("group and others"), "{msg}");
        assert!(
            msg.contains(&format!("chmod 640 {}", path.display())),
            "{msg}"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("0620 lets its group write it"), "{err}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        Config::load(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        Config::load(&path).unwrap();
    }

    #[test]
    fn refuses_config_owned_by_another_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "", 0o644);
        // Only root can give a file away; elsewhere this checks the owner's own file passes.
        if effective_uid() == Some(0) {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let err = Config::load(&path).unwrap_err();
            assert!(matches!(
                err,
                ConfigError::Owner {
                    owner: 4242,
                    user: Some(0),
                    ..
                }
            ));
            assert!(err.to_string().contains("chown root"), "{err}");
        } else {
            Config::load(&path).unwrap();
        }
    }

    #[test]
    fn missing_file_says_how_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(&dir.path().join("nope.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("nope.toml"), "{msg}");
        assert!(msg.contains("an empty file means all defaults"), "{msg}");
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = "#".repeat(MAX_CONFIG_BYTES as usize + 1);
        let path = write_config(dir.path(), &text, 0o600);
        assert!(matches!(
            Config::load(&path),
            Err(ConfigError::TooBig { .. })
        ));
    }

    #[test]
    fn wrong_type_names_line_key_and_expectation() {
        let text = "state-dir = \"/var/lib/authtrail\"\n\nmax-line-bytes = \"big\"\n";
        let err = parse(text).unwrap_err();
        let ConfigError::Syntax { at, key, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((at.line, at.column), (3, 18));
        assert_eq!(key.as_deref(), Some("max-line-bytes"));
        assert_eq!(at.section, None);
        assert!(message.contains("expected"), "{message}");
        assert!(
            err.to_string()
                .starts_with("/etc/authtrail/agent.toml:3:18: key `max-line-bytes`: "),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_inside_a_source_names_the_table() {
        let text = "[[source]]\ntype = \"file\"\npaths = [\"/a\"]\n\n[[source]]\ntype = \"file\"\n\
                    paths = [\"/b\"]\nmax-files = \"many\"\n";
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        // Whatever span toml gives for an internally tagged table, the message names the
        // second [[source]] and the line is within it.
        let ConfigError::Syntax { at, key, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(at.section.as_deref(), Some("[[source]] #2"), "{msg}");
        assert_eq!(at.line, 8, "{msg}");
        assert_eq!(key.as_deref(), Some("max-files"), "{msg}");
        assert!(msg.contains("expected a whole number"), "{msg}");
    }

    #[test]
    fn bad_toml_syntax_names_the_line() {
        let err = parse("timezone = \"UTC\"\n[sink\ntype = \"stdout\"\n").unwrap_err();
        let ConfigError::Syntax { at, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(at.line, 2);
        let err = parse("include-message = yes\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/authtrail/agent.toml:1:19: key `include-message`"),
            "{err}"
        );
    }

    #[test]
    fn typo_in_source_suggests_the_key() {
        let text =
            "timezone = \"UTC\"\n\n[[source]]\ntype = \"file\"\npathz = [\"/var/log/auth.log\"]\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/authtrail/agent.toml:5:1: unknown field `pathz` in [[source]] #1: \
             did you mean `paths`?"
        );
    }

    #[test]
    fn typo_at_top_level_and_in_sink_suggests_the_key() {
        let err = parse("timezon = \"UTC\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/authtrail/agent.toml:1:1: unknown field `timezon` at the top level: \
             did you mean `timezone`?"
        );
        // snake_case for kebab-case.
        let err = parse("max_line_bytes = 10\n").unwrap_err();
        assert!(
            err.to_string().ends_with("did you mean `max-line-bytes`?"),
            "{err}"
        );
        let err = parse("[sink]\ntype = \"file\"\npth = \"/x\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains(":3:1: unknown field `pth` in [sink]: did you mean `path`?"),
            "{err}"
        );
        // Nothing close: list what is accepted.
        let err = parse("colour = \"blue\"\n").unwrap_err().to_string();
        assert!(
            err.contains("expected one of `state-dir`, `hostname`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_value_suggests_the_value() {
        let text = "[[source]]\ntype = \"fil\"\npaths = [\"/x\"]\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains("unknown value `fil` for `type` in [[source]] #1: did you mean `file`?"),
            "{err}"
        );
        let text = "[[source]]\ntype = \"file\"\npaths = [\"/x\"]\nread-from = \"begining\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("did you mean `beginning`?"), "{err}");
    }

    #[test]
    fn missing_source_type_is_reported() {
        let err = parse("[[source]]\npaths = [\"/x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in [[source]] #1"), "{err}");
        assert!(err.contains("type"), "{err}");
    }

    #[test]
    fn compression_level_is_checked_against_its_compression() {
        let errs = |extra: &str| -> Vec<String> {
            let text =
                format!("[sink]\ntype = \"collector\"\nurl = \"https://c.example\"\n{extra}\n");
            match parse(&text).unwrap().validate() {
                Ok(()) => Vec::new(),
                Err(e) => e
                    .iter()
                    .map(ToString::to_string)
                    .filter(|m| m.contains("compression-level"))
                    .collect(),
            }
        };
        for ok in [
            "compression-level = 1",
            "compression-level = 19",
            "compression = \"gzip\"\ncompression-level = 9",
            "",
        ] {
            assert!(errs(ok).is_empty(), "{ok}: {:?}", errs(ok));
        }
        for (bad, want) in [
            ("compression-level = 0", "between 1 and 19"),
            ("compression-level = 20", "between 1 and 19"),
            (
                "compression = \"gzip\"\ncompression-level = 10",
                "between 1 and 9",
            ),
            ("compression = \"none\"\ncompression-level = 3", "remove it"),
        ] {
            let e = errs(bad);
            assert!(e.len() == 1 && e[0].contains(want), "{bad}: {e:?}");
        }
    }

    #[test]
    fn validate_reports_every_problem() {
        let text = r#"
state-dir = "var/lib/authtrail"
hostname = ""
timezone = "Mars/Olympus"
max-line-bytes = 0

[[source]]
type = "file"
paths = []

[[source]]
type = "file"
name = "file"
paths = ["log/auth.log", "/var/log/[x"]
poll-interval = "0s"
max-files = 0

[[source]]
type = "journald"
journalctl = "bin/journalctl"
directory = "/j"
files = ["/j/system.journal"]

[[source]]
type = "utmp"
name = "wtmp/../x"

[sink]
type = "file"
path = "/nonexistent-authtrail-dir/events.ndjson"
"#;
        let errors = Config::check(text, Path::new("/etc/authtrail/agent.toml")).unwrap_err();
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| {
            assert!(
                msgs.iter().any(|m| m.contains(needle)),
                "no {needle:?} in {msgs:#?}"
            );
        };
        has("state-dir = \"var/lib/authtrail\": must be an absolute path");
        has("hostname = \"\"");
        has("agent.toml:4:12: key `timezone`: expected `local`, `UTC`");
        has("max-line-bytes = 0: must be between 1 and 16777216");
        has("[[source]] #1 (file): `paths` is empty");
        has("[[source]] #1 and #2 are both named `file`");
        has("[[source]] #2 (file) paths = \"log/auth.log\": must be an absolute path");
        has("\"/var/log/[x\" is not a valid glob");
        has("[[source]] #2 (file) poll-interval = 0");
        has("[[source]] #2 (file) max-files = 0");
        has("[[source]] #3 (journald) journalctl = \"bin/journalctl\"");
        has("set `directory` or `files`, not both");
        has("[[source]] #4: name \"wtmp/../x\" must be");
        has("its directory /nonexistent-authtrail-dir cannot be used");
        assert_eq!(errors.len(), 14, "{msgs:#?}");

        let big = Config {
            max_line_bytes: ByteSize(MAX_LINE_BYTES_LIMIT as u64 + 1),
            ..Config::default()
        };
        assert!(matches!(
            big.validate().unwrap_err()[..],
            [ConfigError::LineBound { .. }]
        ));
        let ok = Config {
            max_line_bytes: ByteSize(MAX_LINE_BYTES_LIMIT as u64),
            timezone: "+05:30".parse().unwrap(),
            ..Config::default()
        };
        ok.validate().unwrap();
    }

    #[test]
    fn sink_file_in_existing_directory_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            sink: SinkConfig::File {
                path: dir.path().join("events.ndjson"),
            },
            ..Config::default()
        };
        config.validate().unwrap();
        config.sink = SinkConfig::File {
            path: dir.path().to_owned(),
        };
        let err = config.validate().unwrap_err();
        assert!(err[0].to_string().contains("is a directory"), "{}", err[0]);
    }

    #[test]
    fn sources_get_default_names_by_type_and_place() {
        let text = r#"
[[source]]
type = "file"
paths = ["/a"]
[[source]]
type = "journald"
[[source]]
type = "file"
name = "secure"
paths = ["/b"]
[[source]]
type = "file"
paths = ["/c"]
[[source]]
type = "utmp"
"#;
        let config = parse(text).unwrap();
        let named = config.named_sources();
        let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["file", "journald", "secure", "file-3", "utmp"]);
        for (name, source) in &named {
            assert_eq!(source.name(), Some(name.as_str()));
        }
        config.validate().unwrap();
    }

    /// A fake file system root with the given files (contents irrelevant).
    fn fake_root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = root.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        root
    }

    fn file_paths(s: &SourceConfig) -> &[String] {
        match s {
            SourceConfig::File(c) => &c.paths,
            other => panic!("not a file source: {other:?}"),
        }
    }

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
    const UBUNTU: &str = "ID=ubuntu\nID_LIKE=debian\n";
    const ROCKY: &str = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
    const OPENSUSE: &str = "ID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n";

    #[test]
    fn default_source_is_existing_auth_log() {
        let root = fake_root(&[("/var/log/auth.log", ""), ("/var/log/secure", "")]);
        let (sources, why) = default_sources(root.path());
        assert_eq!(sources.len(), 1, "{sources:?}");
        assert_eq!(
            file_paths(&sources[0]),
            ["/var/log/auth.log", "/var/log/auth.log.1"]
        );
        assert!(why.contains("/var/log/auth.log exists"), "{why}");
        assert!(why.contains("no utmp source"), "{why}");

        let root = fake_root(&[("/var/log/secure", ""), ("/etc/os-release", UBUNTU)]);
        let (sources, why) = default_sources(root.path());
        assert_eq!(file_paths(&sources[0])[0], "/var/log/secure");
        assert!(
            glob::Pattern::new(&file_paths(&sources[0])[1])
                .unwrap()
                .matches("/var/log/secure-20260301")
        );
        assert!(why.contains("/var/log/secure exists"), "{why}");
    }

    #[test]
    fn default_source_follows_os_release_before_the_file_exists() {
        // A fresh Debian without rsyslog has no auth.log: only the journal.
        let root = fake_root(&[("/etc/os-release", DEBIAN), ("/run/systemd/system/x", "")]);
        let (sources, why) = default_sources(root.path());
        assert!(
            matches!(sources[..], [SourceConfig::Journald(_)]),
            "{sources:?}"
        );
        assert!(why.contains("Debian GNU/Linux 12"), "{why}");
        assert!(why.contains("no syslog daemon"), "{why}");
        assert!(!why.contains("no systemd journal"), "{why}");

        // With rsyslog installed, auth.log will appear at the first login.
        let root = fake_root(&[("/etc/os-release", UBUNTU), ("/etc/rsyslog.conf", "")]);
        let (sources, _) = default_sources(root.path());
        assert_eq!(file_paths(&sources[0])[0], "/var/log/auth.log");

        let root = fake_root(&[("/usr/lib/os-release", ROCKY), ("/etc/rsyslog.conf", "")]);
        let (sources, why) = default_sources(root.path());
        assert_eq!(file_paths(&sources[0])[0], "/var/log/secure", "{why}");

        // SUSE logs authentication to the journal even with rsyslog.
        let root = fake_root(&[("/etc/os-release", OPENSUSE), ("/etc/rsyslog.conf", "")]);
        let (sources, why) = default_sources(root.path());
        assert!(matches!(sources[..], [SourceConfig::Journald(_)]), "{why}");

        // Nothing known at all: journald, with a warning that there is no journal either.
        let root = fake_root(&[]);
        let (sources, why) = default_sources(root.path());
        assert!(matches!(sources[..], [SourceConfig::Journald(_)]));
        assert!(why.contains("no systemd journal was found"), "{why}");
    }

    #[test]
    fn default_sources_add_audit_where_the_audit_log_is_readable() {
        let root = fake_root(&[("/var/log/auth.log", ""), ("/var/log/audit/audit.log", "")]);
        let mut config = Config::default();
        let why = config.fill_default_sources(root.path()).unwrap();
        assert!(why.contains("audit source"), "{why}");
        let names: Vec<String> = config.named_sources().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["file", "audit"]);
        config.validate().unwrap();
        let root = fake_root(&[("/var/log/auth.log", "")]);
        let mut config = Config::default();
        config.fill_default_sources(root.path()).unwrap();
        assert!(
            !config
                .sources
                .iter()
                .any(|s| matches!(s, SourceConfig::Audit(_)))
        );
        let parsed = parse("[[source]]\ntype = \"audit\"\n").unwrap();
        assert_eq!(
            parsed.sources,
            [SourceConfig::Audit(AuditSourceConfig::default())]
        );
        assert!(parse("[[source]]\ntype = \"audit\"\npath = [\"/x\"]\n").is_err());
    }

    #[test]
    fn default_sources_add_utmp_when_wtmp_exists() {
        let root = fake_root(&[("/var/log/auth.log", ""), ("/var/log/wtmp", "")]);
        let mut config = Config::default();
        let why = config.fill_default_sources(root.path()).unwrap();
        assert!(why.contains("event.provider"), "{why}");
        let names: Vec<String> = config.named_sources().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["file", "utmp"]);
        config.validate().unwrap();
        // Configured sources are never replaced.
        assert_eq!(config.fill_default_sources(root.path()), None);
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let mut config = parse(&uncomment(EXAMPLE)).unwrap();
        config.hostname = Some("h".into());
        config.sink = SinkConfig::File {
            path: "/var/log/authtrail/events.ndjson".into(),
        };
        let text = config.to_toml().unwrap();
        assert_eq!(parse(&text).unwrap(), config, "{text}");
        let text = Config::default().to_toml().unwrap();
        assert_eq!(parse(&text).unwrap(), Config::default(), "{text}");
    }

    /// The example with its commented-out settings (`# key = ...`, `# [[source]]`) switched on.
    fn uncomment(text: &str) -> String {
        text.lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn example_config_parses_and_validates() {
        // As shipped: the defaults, with sources chosen by the host.
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config, Config::default());
        config.validate().unwrap();

        // Every commented-out setting is valid too, and shows the default.
        let config = parse(&uncomment(EXAMPLE)).unwrap();
        config.validate().unwrap();
        let kinds: Vec<&str> = config.sources.iter().map(SourceConfig::kind).collect();
        assert_eq!(kinds, ["file", "journald", "utmp", "audit"]);
        let SourceConfig::Audit(audit) = &config.sources[3] else {
            unreachable!()
        };
        assert_eq!(
            AuditSourceConfig {
                name: None,
                ..audit.clone()
            },
            AuditSourceConfig::default()
        );
        let SourceConfig::File(file) = &config.sources[0] else {
            unreachable!()
        };
        assert_eq!(
            FileSourceConfig {
                name: None,
                paths: Vec::new(),
                ..file.clone()
            },
            FileSourceConfig::default()
        );
        let SourceConfig::Journald(journald) = &config.sources[1] else {
            unreachable!()
        };
        assert_eq!(
            JournaldSourceConfig {
                name: None,
                directory: None,
                ..journald.clone()
            },
            JournaldSourceConfig::default()
        );
        let SourceConfig::Utmp(utmp) = &config.sources[2] else {
            unreachable!()
        };
        assert_eq!(
            UtmpSourceConfig {
                name: None,
                ..utmp.clone()
            },
            UtmpSourceConfig::default()
        );
    }

    #[test]
    fn detect_allow_lists_and_working_hours_reach_the_detector() {
        use agent_core::detect::{Cidr, Rule};
        let config = parse(
            "[detect]\noff-hours = true\nworking-days = [\"mon\", \"sat\"]\nworking-hours-zone = \"+02:00\"\n\
             privileged-groups = [\"wheel\"]\n\
             [detect.allow.root-login]\nnetworks = [\"10.0.0.5\", \"2001:db8::/32\"]\nusers = [\"backup\"]\n",
        )
        .unwrap();
        config.validate().unwrap();
        let c = config.detect.to_detect_config(7);
        assert_eq!(
            (c.off_hours.enabled, c.off_hours.weekdays),
            (true, 0b010_0001)
        );
        assert_eq!(c.off_hours.utc_offset_secs, 7200);
        assert!(c.account_changes.privileged_groups.contains(b"wheel"));
        assert!(!c.account_changes.privileged_groups.contains(b"sudo"));
        let mut want = agent_core::detect::AllowList::EMPTY;
        want.push_net(Cidr::parse("10.0.0.5").unwrap()).unwrap();
        want.push_net(Cidr::parse("2001:db8::/32").unwrap())
            .unwrap();
        want.users.push(b"backup").unwrap();
        assert_eq!(c.allow[Rule::RootLogin.index()], want);
        assert_eq!(
            c.allow[Rule::BruteForce.index()],
            agent_core::detect::AllowList::EMPTY
        );

        // Typos in rule names, networks and days are refused, each with what to write.
        let bad = parse(
            "[detect]\nworking-days = [\"monday\"]\n[detect.allow.root-logins]\nnetworks = [\"10.0.0.0/33\"]\n",
        )
        .unwrap();
        let errors: Vec<String> = bad
            .validate()
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("\"monday\" is not one of mon, tue"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("allow.root-logins: no such rule; the rules are brute-force"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains("\"10.0.0.0/33\" is not an address"),
            "{errors:?}"
        );
    }

    #[test]
    fn example_config_mentions_every_key() {
        let full = Config {
            hostname: Some("h".into()),
            sources: vec![
                SourceConfig::File(FileSourceConfig {
                    name: Some("n".into()),
                    ..FileSourceConfig::default()
                }),
                SourceConfig::Journald(JournaldSourceConfig {
                    name: Some("n".into()),
                    directory: Some("/d".into()),
                    ..JournaldSourceConfig::default()
                }),
                SourceConfig::Utmp(UtmpSourceConfig {
                    name: Some("n".into()),
                    ..UtmpSourceConfig::default()
                }),
            ],
            sink: SinkConfig::File { path: "/p".into() },
            ..Config::default()
        };
        let text = full.to_toml().unwrap();
        for line in text.lines() {
            let Some(key) = line_key(line) else { continue };
            assert!(
                EXAMPLE.contains(&format!("\n{key} = "))
                    || EXAMPLE.contains(&format!("\n# {key} = "))
                    || EXAMPLE.contains(&format!("\n## {key} = ")),
                "key `{key}` is not in targets/agent.toml"
            );
        }
    }

    #[test]
    fn errors_reported_are_bounded() {
        let text: String = (0..MAX_ERRORS + 10)
            .map(|i| format!("typo-{i} = 1\n"))
            .collect();
        let errors = Config::check(&text, Path::new("a.toml")).unwrap_err();
        assert_eq!(errors.len(), MAX_ERRORS);
    }

    #[test]
    fn every_type_error_is_reported_once_in_file_order() {
        let text = "[[source]]\ntype = \"fil\"\n[[source]]\npaths = []\n\
                    [[source]]\ntype = \"file\"\npaths = [\"/x\"]\nmax-files = \"many\"\n\
                    poll-interval = 5\n";
        let errors = Config::check(text, Path::new("a.toml")).unwrap_err();
        let lines: Vec<usize> = errors
            .iter()
            .filter_map(|e| e.location().map(|at| at.line))
            .collect();
        // A source stepped over gets no semantic errors (the one without `type` has no paths).
        assert_eq!(lines, [2, 3, 8, 9], "{errors:#?}");
    }

    #[test]
    fn typo_suggestions_stay_close() {
        let expected: Vec<String> = ["name", "paths", "read-from"].map(String::from).to_vec();
        assert_eq!(closest("pathz", &expected).as_deref(), Some("paths"));
        assert_eq!(
            closest("read_from", &expected).as_deref(),
            Some("read-from")
        );
        assert_eq!(closest("readfrom", &expected).as_deref(), Some("read-from"));
        assert_eq!(closest("colour", &expected), None);
        assert_eq!(closest("x", &expected), None);
    }
}
