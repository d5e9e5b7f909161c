//! `[[source]] type = "utmp"`: the utmp source's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::{ReadFrom, SourceProblem, path_problems, zero_interval};

/// `[[source]] type = "utmp"`.
///
/// wtmp holds a record for each login on a terminal and each logout; btmp each failed login.
/// sshd also writes these to the auth log, so the same login can arrive twice: events from this
/// source carry `event.provider = "utmp"` (the auth log's carry the program's name), and
/// downstream de-duplicates or filters on it. They are not merged in the agent because the two
/// records differ (utmp has the tty and the logout; the auth log has the method and key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct UtmpSourceConfig {
    /// Name used in checkpoints, status and events (letters, digits, `.`, `_`, `-`).
    /// Defaults to `utmp`, then `utmp-2`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute paths or globs of `struct utmp` record files.
    /// Defaults to `/var/log/wtmp` and `/var/log/btmp`.
    pub paths: Vec<String>,
    /// For files present at first start: `end` or `beginning`. Defaults to `end`.
    pub read_from: ReadFrom,
    /// How often to look for new records when inotify gives no events. Defaults to 1 s.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for UtmpSourceConfig {
    fn default() -> Self {
        UtmpSourceConfig {
            name: None,
            paths: vec!["/var/log/wtmp".to_owned(), "/var/log/btmp".to_owned()],
            read_from: ReadFrom::End,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl UtmpSourceConfig {
    /// The semantic checks of these settings, each with the key it is about: `paths` given,
    /// absolute and valid globs; `poll-interval` at least 1.
    pub(crate) fn problems(&self) -> Vec<(&'static str, SourceProblem)> {
        let mut out = path_problems(&self.paths);
        out.extend(zero_interval("poll-interval", self.poll_interval));
        out
    }
}
