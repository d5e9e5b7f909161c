//! `[[source]] type = "file"`: the file source's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::{ReadFrom, SourceProblem, path_problems, zero_interval};

/// `[[source]] type = "file"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSourceConfig {
    /// Name used in checkpoints, status and events (letters, digits, `.`, `_`, `-`).
    /// Defaults to `file`, then `file-2`, `file-3`... by its place among the file sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute paths or globs (`/var/log/secure*`). Required: defaults to none.
    pub paths: Vec<String>,
    /// For files present when the source first starts: `end` or `beginning`. Files found later
    /// are always read from the beginning. Defaults to `end`.
    pub read_from: ReadFrom,
    /// How often to look for changes when inotify gives no events (network filesystems), and to
    /// re-scan globs. Defaults to 1 s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a last line without a newline is held before it is read anyway (and flagged).
    /// Defaults to 5 s.
    #[serde(with = "humantime_serde")]
    pub partial_line_timeout: Duration,
    /// Most files followed at once from this source; more matches are skipped with a warning.
    /// Defaults to 256.
    pub max_files: usize,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        FileSourceConfig {
            name: None,
            paths: Vec::new(),
            read_from: ReadFrom::End,
            poll_interval: Duration::from_secs(1),
            partial_line_timeout: Duration::from_secs(5),
            max_files: 256,
        }
    }
}

impl FileSourceConfig {
    /// The semantic checks of these settings, each with the key it is about: `paths` given,
    /// absolute and valid globs; `poll-interval`, `partial-line-timeout` and `max-files` at
    /// least 1.
    pub(crate) fn problems(&self) -> Vec<(&'static str, SourceProblem)> {
        let mut out = path_problems(&self.paths);
        out.extend(zero_interval("poll-interval", self.poll_interval));
        out.extend(zero_interval(
            "partial-line-timeout",
            self.partial_line_timeout,
        ));
        if self.max_files == 0 {
            out.push(("max-files", SourceProblem::Zero));
        }
        out
    }
}

/// `[[source]] type = "audit"`: auditd's log, raw or enriched records (`USER_AUTH`,
/// `USER_LOGIN`, `ADD_USER`...). It is followed by the file source, so rotation (auditd renames
/// `audit.log` to `audit.log.1`), checkpoints and restarts behave exactly as for `type = "file"`.
/// Where auditd is absent and the kernel's records go to the journal instead, the journald
/// source reads them (they are facility auth, `SYSLOG_IDENTIFIER=audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditSourceConfig {
    /// Name used in checkpoints, status and events (letters, digits, `.`, `_`, `-`).
    /// Defaults to `audit`, then `audit-2`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute paths or globs of audit logs.
    /// Defaults to `/var/log/audit/audit.log` and `/var/log/audit/audit.log.1`.
    pub paths: Vec<String>,
    /// For files present when the source first starts: `end` or `beginning`. Defaults to `end`.
    pub read_from: ReadFrom,
    /// How often to look for changes when inotify gives no events. Defaults to 1 s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for AuditSourceConfig {
    fn default() -> Self {
        AuditSourceConfig {
            name: None,
            paths: vec![
                "/var/log/audit/audit.log".into(),
                "/var/log/audit/audit.log.1".into(),
            ],
            read_from: ReadFrom::End,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl AuditSourceConfig {
    /// The file source that follows the audit log.
    pub fn as_file(&self) -> FileSourceConfig {
        FileSourceConfig {
            name: self.name.clone(),
            paths: self.paths.clone(),
            read_from: self.read_from,
            poll_interval: self.poll_interval,
            ..FileSourceConfig::default()
        }
    }

    /// The semantic checks of these settings, each with the key it is about: `paths` given,
    /// absolute and valid globs; `poll-interval` at least 1.
    pub(crate) fn problems(&self) -> Vec<(&'static str, SourceProblem)> {
        let mut out = path_problems(&self.paths);
        out.extend(zero_interval("poll-interval", self.poll_interval));
        out
    }
}
