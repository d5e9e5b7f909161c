//! The agent's configuration: one local TOML file, `/etc/authtrail/agent.toml` by default.
//!
//! Every field has a default, so an empty file is a valid configuration. Unknown keys are errors
//! (a typo must not silently turn a setting off). Names are kebab-case.
//!
//! [`Config::load`] reads the file (refusing one that others can write) and reports TOML errors
//! with the line, the key and a suggestion for a misspelt key; [`Config::validate`] does the
//! semantic checks; [`default_sources`] picks the auth log when no `[[source]]` is configured.
//! `authtrail validate` and `authtrail sources` show the result. The annotated example is
//! `targets/agent.toml`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timezone::{Zone, ZoneError};

/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/authtrail/agent.toml";

/// Largest `max-line-bytes` accepted: 16 MiB. A bigger bound would let one line take more memory
/// than the whole event ring.
pub const MAX_LINE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Largest config file read, bytes. A config is a few KiB; this bounds what a mistaken
/// `--config /var/log/huge.log` can make the agent read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

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
    pub timezone: String,
    /// Longest line kept, in bytes (1 to 16 MiB); longer lines are cut, flagged and counted.
    /// Defaults to 65536.
    pub max_line_bytes: usize,
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

/// `[detect]`: the agent's edge detections (alerts are events with `event.kind = "alert"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DetectSettings {
    /// Run the detections. Defaults to true.
    pub enabled: bool,
    /// Brute force: this many password/key attempts from one address... Defaults to 10.
    pub brute_force_threshold: u32,
    /// ...within this window. Defaults to 5m.
    #[serde(with = "humantime_serde")]
    pub brute_force_window: Duration,
    /// Password spray: attempts against this many distinct user names from one address...
    /// Defaults to 5.
    pub spray_threshold: u32,
    /// ...within this window. Defaults to 10m.
    #[serde(with = "humantime_serde")]
    pub spray_window: Duration,
    /// Success after failures: a login that follows this many failures (from its address, or
    /// for its user)... Defaults to 3.
    pub success_after_failures_threshold: u32,
    /// ...within this window. Defaults to 10m.
    #[serde(with = "humantime_serde")]
    pub success_after_failures_window: Duration,
    /// Also count failures for the same user from other addresses (a stolen password used
    /// after guessing elsewhere). Defaults to true.
    pub success_after_failures_by_user: bool,
    /// Alert when a user logs in with a password from an address not seen for them before.
    /// Defaults to true.
    pub first_seen_source: bool,
    /// ...and with a key too. Defaults to false.
    pub first_seen_key_logins: bool,
    /// No first-seen alerts during this long after the agent starts (it learns the usual
    /// addresses first; its memory of them is not kept across restarts). Defaults to 1d.
    #[serde(with = "humantime_serde")]
    pub first_seen_learning: Duration,
    // Everything below is issue 14's rules, kept together for the config redesign to absorb.
    /// Slow brute force: this many attempts from one address within `slow-window`. Defaults
    /// to 40.
    pub slow_brute_force_threshold: u32,
    /// Slow spray: this many distinct existing accounts from one address within
    /// `slow-window`. Defaults to 6.
    pub slow_spray_threshold: u32,
    /// The slow rules' long window. Defaults to 6h.
    #[serde(with = "humantime_serde")]
    pub slow_window: Duration,
    /// Distributed spray: at least this many failing addresses... Defaults to 20.
    pub distributed_spray_sources: u32,
    /// ...against at least this many user names... Defaults to 10.
    pub distributed_spray_users: u32,
    /// ...within this window, and above `distributed-spray-factor` times the host's learnt
    /// background. Defaults to 1h.
    #[serde(with = "humantime_serde")]
    pub distributed_spray_window: Duration,
    /// Defaults to 3.
    pub distributed_spray_factor: u32,
    /// sudo or su within this long after a login of that user that alerted is reported; also turns
    /// on `sudo` refusals, repeated sudo/su failures and first sudo. Defaults to 30m.
    #[serde(with = "humantime_serde")]
    pub privilege_window: Duration,
    /// Repeated sudo/su password failures: this many by one user... Defaults to 3.
    pub privilege_failure_threshold: u32,
    /// ...within this window. Defaults to 10m.
    #[serde(with = "humantime_serde")]
    pub privilege_failure_window: Duration,
    /// Report a user's first sudo on this host... Defaults to true.
    pub first_sudo: bool,
    /// ...after the detector has seen logins for this long. Defaults to 7d.
    #[serde(with = "humantime_serde")]
    pub first_sudo_learning: Duration,
    /// Report accounts created, added to a privileged group, or whose password root changed,
    /// and the first login of a new account. Defaults to true.
    pub account_changes: bool,
    /// Groups that give privilege (at most 12). Defaults to sudo, wheel, adm, root, docker, lxd.
    pub privileged_groups: Vec<String>,
    /// A new account's first login within this long of its creation is reported. Defaults to
    /// 3d.
    #[serde(with = "humantime_serde")]
    pub new_account_window: Duration,
    /// Report root (uid 0) logging in over the network; allow-list the hosts that may
    /// (`[detect.allow.root-login]`). Defaults to true.
    pub root_login: bool,
    /// Report logins outside working hours. Defaults to false.
    pub off_hours: bool,
    /// Working days. Defaults to mon, tue, wed, thu, fri.
    pub working_days: Vec<String>,
    /// First working hour, 0-23. Defaults to 7.
    pub working_hours_start: u8,
    /// The hour working time ends, 1-24. Defaults to 20.
    pub working_hours_end: u8,
    /// The zone of the working hours: `local` (its offset when the agent starts), `UTC` or
    /// `+HH:MM`. Defaults to `local`.
    pub working_hours_zone: String,
    /// Per rule (`[detect.allow.<rule id>]`, e.g. `root-login`, `success-after-failures`): the
    /// user names and networks it must not alert on. The events are still shipped. Defaults to
    /// none.
    pub allow: BTreeMap<String, AllowSettings>,
}

/// `[detect.allow.<rule>]`: what one rule must not alert on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AllowSettings {
    /// User names (automation accounts), at most 8. Defaults to none.
    pub users: Vec<String>,
    /// Source networks (`10.0.0.5`, `10.0.0.0/24`, `2001:db8::/32`), at most 8. Defaults to
    /// none.
    pub networks: Vec<String>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Default for DetectSettings {
    fn default() -> Self {
        let d = agent_core::detect::DetectConfig::default();
        DetectSettings {
            enabled: true,
            brute_force_threshold: d.brute_force.threshold,
            brute_force_window: Duration::from_secs(d.brute_force.window_secs.into()),
            spray_threshold: d.password_spray.threshold,
            spray_window: Duration::from_secs(d.password_spray.window_secs.into()),
            success_after_failures_threshold: d.success_after_failures.threshold,
            success_after_failures_window: Duration::from_secs(
                d.success_after_failures.window_secs.into(),
            ),
            success_after_failures_by_user: d.success_after_failures.by_user,
            first_seen_source: d.first_seen_source.enabled,
            first_seen_key_logins: d.first_seen_source.key_logins,
            first_seen_learning: Duration::from_secs(d.first_seen_source.learning_secs.into()),
            slow_brute_force_threshold: d.slow.brute_threshold,
            slow_spray_threshold: d.slow.spray_threshold,
            slow_window: Duration::from_secs(d.slow.window_secs.into()),
            distributed_spray_sources: d.distributed_spray.min_sources,
            distributed_spray_users: d.distributed_spray.min_users,
            distributed_spray_window: Duration::from_secs(d.distributed_spray.window_secs.into()),
            distributed_spray_factor: d.distributed_spray.baseline_factor,
            privilege_window: Duration::from_secs(d.privilege.window_secs.into()),
            privilege_failure_threshold: d.privilege.failure_threshold,
            privilege_failure_window: Duration::from_secs(d.privilege.failure_window_secs.into()),
            first_sudo: d.privilege.first_sudo,
            first_sudo_learning: Duration::from_secs(d.privilege.first_sudo_learning_secs.into()),
            account_changes: d.account_changes.enabled,
            privileged_groups: d
                .account_changes
                .privileged_groups
                .iter()
                .map(|g| g.to_string())
                .collect(),
            new_account_window: Duration::from_secs(d.account_changes.new_account_secs.into()),
            root_login: d.root_login.enabled,
            off_hours: d.off_hours.enabled,
            working_days: WEEKDAYS[..5].iter().map(|d| (*d).to_owned()).collect(),
            working_hours_start: d.off_hours.start_hour,
            working_hours_end: d.off_hours.end_hour,
            working_hours_zone: "local".to_owned(),
            allow: BTreeMap::new(),
        }
    }
}

impl DetectSettings {
    /// The detector's configuration; `seed` keys its hash tables (pass a random value).
    pub fn to_detect_config(&self, seed: u32) -> agent_core::detect::DetectConfig {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1);
        let mut c = agent_core::detect::DetectConfig::default();
        c.brute_force.enabled = self.enabled;
        c.brute_force.threshold = self.brute_force_threshold.max(1);
        c.brute_force.window_secs = secs(self.brute_force_window);
        c.password_spray.enabled = self.enabled;
        c.password_spray.threshold = self.spray_threshold.max(1);
        c.password_spray.window_secs = secs(self.spray_window);
        c.success_after_failures.enabled = self.enabled;
        c.success_after_failures.threshold = self.success_after_failures_threshold.max(1);
        c.success_after_failures.window_secs = secs(self.success_after_failures_window);
        c.success_after_failures.by_user = self.success_after_failures_by_user;
        c.first_seen_source.enabled = self.enabled && self.first_seen_source;
        c.first_seen_source.key_logins = self.first_seen_key_logins;
        c.first_seen_source.learning_secs =
            u32::try_from(self.first_seen_learning.as_secs()).unwrap_or(u32::MAX);
        c.hash_seed = seed;
        c.slow.enabled = self.enabled;
        c.slow.brute_threshold = self.slow_brute_force_threshold.max(1);
        c.slow.spray_threshold = self.slow_spray_threshold.max(1);
        c.slow.window_secs = secs(self.slow_window);
        let ds = &mut c.distributed_spray;
        ds.enabled = self.enabled;
        ds.min_sources = self.distributed_spray_sources.max(1);
        ds.min_users = self.distributed_spray_users.max(1);
        ds.window_secs = secs(self.distributed_spray_window);
        ds.baseline_factor = self.distributed_spray_factor.max(1);
        c.privilege.enabled = self.enabled;
        c.privilege.window_secs = secs(self.privilege_window);
        c.privilege.failure_threshold = self.privilege_failure_threshold.max(1);
        c.privilege.failure_window_secs = secs(self.privilege_failure_window);
        c.privilege.first_sudo = self.first_sudo;
        c.privilege.first_sudo_learning_secs =
            u32::try_from(self.first_sudo_learning.as_secs()).unwrap_or(u32::MAX);
        c.account_changes.enabled = self.enabled && self.account_changes;
        c.account_changes.privileged_groups = agent_core::detect::NameList::EMPTY;
        for g in &self.privileged_groups {
            // `validate` refuses more than the list holds.
            let _ = c.account_changes.privileged_groups.push(g.as_bytes());
        }
        c.account_changes.new_account_secs = secs(self.new_account_window);
        c.root_login.enabled = self.enabled && self.root_login;
        let oh = &mut c.off_hours;
        oh.enabled = self.enabled && self.off_hours;
        oh.weekdays = self
            .working_days
            .iter()
            .filter_map(|d| WEEKDAYS.iter().position(|w| d.eq_ignore_ascii_case(w)))
            .fold(0, |bits, i| bits | 1 << i);
        oh.start_hour = self.working_hours_start;
        oh.end_hour = self.working_hours_end;
        oh.utc_offset_secs = self.working_hours_zone.parse::<Zone>().map_or(0, |z| {
            z.offset_at(agent_core::Timestamp::from_secs(now_secs()))
        });
        for (rule, allow) in &self.allow {
            let Some(rule) = agent_core::detect::Rule::from_str_exact(&rule.replace('-', "_"))
            else {
                continue;
            };
            let list = c.allow_mut(rule);
            for u in &allow.users {
                let _ = list.users.push(u.as_bytes());
            }
            for n in &allow.networks {
                if let Some(net) = agent_core::detect::Cidr::parse(n) {
                    let _ = list.push_net(net);
                }
            }
        }
        c
    }

    /// What `to_detect_config` would drop or could not read, one message each.
    pub fn problems(&self) -> Vec<String> {
        use agent_core::detect::{ALLOW_NETS, ALLOW_USERS, Cidr, MAX_GROUPS, Rule};
        let mut out = Vec::new();
        if self.privileged_groups.len() > MAX_GROUPS {
            out.push(format!("privileged-groups: at most {MAX_GROUPS} groups"));
        }
        for d in &self.working_days {
            if !WEEKDAYS.iter().any(|w| d.eq_ignore_ascii_case(w)) {
                out.push(format!(
                    "working-days: {d:?} is not one of {}",
                    WEEKDAYS.join(", ")
                ));
            }
        }
        if let Err(e) = self.working_hours_zone.parse::<Zone>() {
            out.push(format!(
                "working-hours-zone = {:?}: {e}",
                self.working_hours_zone
            ));
        }
        if let Err(e) = self.to_detect_config(0).validate() {
            out.push(e.to_string());
        }
        for (rule, allow) in &self.allow {
            if Rule::from_str_exact(&rule.replace('-', "_")).is_none() {
                let ids: Vec<String> = Rule::ALL
                    .iter()
                    .map(|r| r.as_str().replace('_', "-"))
                    .collect();
                out.push(format!(
                    "allow.{rule}: no such rule; the rules are {}",
                    ids.join(", ")
                ));
            }
            if allow.users.len() > ALLOW_USERS || allow.networks.len() > ALLOW_NETS {
                out.push(format!(
                    "allow.{rule}: at most {ALLOW_USERS} users and {ALLOW_NETS} networks"
                ));
            }
            for n in &allow.networks {
                if Cidr::parse(n).is_none() {
                    out.push(format!(
                        "allow.{rule}: {n:?} is not an address or a network like 10.0.0.0/24"
                    ));
                }
            }
        }
        out
    }
}

/// Seconds since the epoch now (0 if the clock is before it).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

/// Where to start in a file that exists when its source first starts (the agent's first start,
/// or the first start of a source added to the config later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadFrom {
    /// Only lines written from now on.
    #[default]
    End,
    /// The whole file.
    Beginning,
}

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

/// `[[source]] type = "journald"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct JournaldSourceConfig {
    /// Name used in checkpoints, status and events (letters, digits, `.`, `_`, `-`).
    /// Defaults to `journald`, then `journald-2`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `journalctl` binary: a bare name looked up on `PATH`, or an absolute path.
    /// Defaults to `journalctl`.
    pub journalctl: PathBuf,
    /// Read this journal directory instead of the system journal (`--directory`).
    /// Defaults to none (the system journal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Read these journal files instead of the system journal (`--file`); not with `directory`.
    /// Defaults to none (the system journal).
    pub files: Vec<PathBuf>,
    /// Programs (`SYSLOG_IDENTIFIER`) to read besides facilities 4 and 10 (auth, authpriv; the
    /// journal's own audit records are facility 4). Defaults to sshd, sshd-session, sshd-auth,
    /// sudo, doas, su, login, systemd-logind, dropbear, the shadow tools (useradd, usermod,
    /// passwd...), the FTP daemons (vsftpd, proftpd, pure-ftpd, ftpd, in.ftpd) and klogind/kshd.
    pub identifiers: Vec<String>,
    /// Start at the end of the journal on first start, or at its beginning. Defaults to `end`.
    pub read_from: ReadFrom,
}

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
}

/// `[sink] type = "collector"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CollectorConfig {
    /// The collector's base URL; batches go to `{url}/v1/batches`. `https://` only: there is no
    /// plaintext fallback, ever. Required: defaults to none.
    pub url: String,
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
    pub batch_max_bytes: usize,
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
    pub proxy: Option<String>,
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
    pub max_bytes: u64,
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
pub const BATCH_MAX_BYTES_LIMIT: usize = 64 * 1024 * 1024;

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: String::new(),
            compression: Compression::Zstd,
            compression_level: None,
            batch_max_events: 5000,
            batch_max_bytes: 1024 * 1024,
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
            max_bytes: 256 * 1024 * 1024,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/authtrail"),
            hostname: None,
            timezone: "local".to_owned(),
            max_line_bytes: 64 * 1024,
            include_message: true,
            commit_interval: Duration::from_millis(300),
            sources: Vec::new(),
            sink: SinkConfig::default(),
            detect: DetectSettings::default(),
        }
    }
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

impl Default for JournaldSourceConfig {
    fn default() -> Self {
        JournaldSourceConfig {
            name: None,
            journalctl: PathBuf::from("journalctl"),
            directory: None,
            files: Vec::new(),
            identifiers: [
                "sshd",
                "sshd-session",
                "sshd-auth",
                "sudo",
                "su",
                "login",
                "systemd-logind",
                "useradd",
                "userdel",
                "usermod",
                "groupadd",
                "groupdel",
                "groupmod",
                "gpasswd",
                "passwd",
                "chpasswd",
                "chage",
                "dropbear",
                "doas",
                // FTP daemons log with facility ftp or daemon; Kerberos rlogin/rsh daemons.
                "vsftpd",
                "proftpd",
                "pure-ftpd",
                "ftpd",
                "in.ftpd",
                "klogind",
                "kshd",
            ]
            .map(String::from)
            .to_vec(),
            read_from: ReadFrom::End,
        }
    }
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
        value: usize,
    },
    /// A `[detect]` value the detections cannot use.
    #[error("[detect] {0}")]
    Detect(String),
    /// A `timezone` that is not `local`, `UTC` or an offset.
    #[error("timezone = {value:?}: {reason}")]
    Timezone {
        /// The configured value.
        value: String,
        /// Why it was refused.
        reason: ZoneError,
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
        (Some(s), Some(k)) => format!("in {s}, key `{k}`: "),
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
    pub fn restart_only_changes(&self, reloaded: &Config) -> Vec<&'static str> {
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

    /// Reads and parses the config file at `path`.
    ///
    /// Refuses a file that group or others may write, or that belongs to neither root nor the
    /// agent's user. An empty file gives [`Config::default`]. Does not run [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
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
        Config::from_toml(&text, path)
    }

    /// What the agent runs with: [`Config::load`], then [`Config::validate`], then
    /// [`Config::fill_default_sources`] for the file system at `root` (`/` in production).
    /// Returns the config and why its sources were chosen (`None` when configured), or every
    /// problem found. `authtrail validate` prints exactly this config.
    pub fn load_effective(
        path: &Path,
        root: &Path,
    ) -> Result<(Config, Option<String>), Vec<ConfigError>> {
        let mut config = Config::load(path).map_err(|e| vec![e])?;
        config.validate()?;
        let why = config.fill_default_sources(root);
        Ok((config, why))
    }

    /// Parses config text; `path` only names the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| locate(&e, text, path))
    }

    /// The config as TOML, every field written out (defaults included).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// Semantic checks that TOML types cannot express. Returns every problem found, not just
    /// the first, so an operator fixes them in one go.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if !self.state_dir.is_absolute() {
            errors.push(ConfigError::RelativePath {
                key: "state-dir".to_owned(),
                path: self.state_dir.display().to_string(),
            });
        }
        if self.hostname.as_deref() == Some("") {
            errors.push(ConfigError::EmptyHostname);
        }
        if let Err(reason) = self.timezone.parse::<Zone>() {
            errors.push(ConfigError::Timezone {
                value: self.timezone.clone(),
                reason,
            });
        }
        errors.extend(self.detect.problems().into_iter().map(ConfigError::Detect));
        if self.commit_interval.is_zero() {
            errors.push(ConfigError::Zero {
                key: "commit-interval".to_owned(),
            });
        }
        if self.max_line_bytes == 0 || self.max_line_bytes > MAX_LINE_BYTES_LIMIT {
            errors.push(ConfigError::LineBound {
                value: self.max_line_bytes,
            });
        }
        let named = self.named_sources();
        for (i, (name, source)) in named.iter().enumerate() {
            let index = i + 1;
            if !valid_name(name) {
                errors.push(ConfigError::BadName {
                    index,
                    name: name.clone(),
                });
            }
            if let Some(j) = named[..i].iter().position(|(n, _)| n == name) {
                errors.push(ConfigError::DuplicateName {
                    name: name.clone(),
                    first: j + 1,
                    second: index,
                });
            }
            validate_source(
                &format!("[[source]] #{index} ({name})"),
                source,
                &mut errors,
            );
        }
        if let SinkConfig::File { path } = &self.sink {
            validate_sink_path(path, &mut errors);
        }
        if let SinkConfig::Collector(c) = &self.sink {
            validate_collector(c, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The configured zone for zone-less timestamps (checked by [`Config::validate`]).
    pub fn zone(&self) -> Result<Zone, ZoneError> {
        self.timezone.parse()
    }

    /// Each configured source with its resolved name (also written into its `name` field):
    /// an unnamed source is called after its type and its place among sources of that type,
    /// `file`, `file-2`, `journald`, `utmp`... Name sources explicitly when there are several of
    /// a type: removing the first would otherwise rename the others and so orphan their
    /// checkpoints.
    ///
    /// With no `[[source]]` configured this is empty; call [`Config::fill_default_sources`]
    /// first.
    pub fn named_sources(&self) -> Vec<(String, SourceConfig)> {
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
    pub fn fill_default_sources(&mut self, root: &Path) -> Option<String> {
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
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::Journald(_) => "journald",
            SourceConfig::Utmp(_) => "utmp",
            SourceConfig::Audit(_) => "audit",
        }
    }

    /// The configured name, if any (see [`Config::named_sources`] for the resolved one).
    pub fn name(&self) -> Option<&str> {
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

fn validate_source(label: &str, source: &SourceConfig, errors: &mut Vec<ConfigError>) {
    let check_paths = |paths: &[String], errors: &mut Vec<ConfigError>| {
        if paths.is_empty() {
            errors.push(ConfigError::NoPaths {
                source_name: label.to_owned(),
            });
        }
        for p in paths {
            if !Path::new(p).is_absolute() {
                errors.push(ConfigError::RelativePath {
                    key: format!("{label} paths"),
                    path: p.clone(),
                });
            }
            if let Err(e) = glob::Pattern::new(p) {
                errors.push(ConfigError::BadGlob {
                    source_name: label.to_owned(),
                    pattern: p.clone(),
                    reason: e.msg.to_owned(),
                });
            }
        }
    };
    let check_interval = |key: &str, d: Duration, errors: &mut Vec<ConfigError>| {
        if d.is_zero() {
            errors.push(ConfigError::Zero {
                key: format!("{label} {key}"),
            });
        }
    };
    match source {
        SourceConfig::File(c) => {
            check_paths(&c.paths, errors);
            check_interval("poll-interval", c.poll_interval, errors);
            check_interval("partial-line-timeout", c.partial_line_timeout, errors);
            if c.max_files == 0 {
                errors.push(ConfigError::Zero {
                    key: format!("{label} max-files"),
                });
            }
        }
        SourceConfig::Utmp(c) => {
            check_paths(&c.paths, errors);
            check_interval("poll-interval", c.poll_interval, errors);
        }
        SourceConfig::Audit(c) => {
            check_paths(&c.paths, errors);
            check_interval("poll-interval", c.poll_interval, errors);
        }
        SourceConfig::Journald(c) => {
            // A bare name is looked up on PATH; anything with a slash must be absolute.
            let bin = c.journalctl.as_os_str().as_encoded_bytes();
            if bin.is_empty() || (bin.contains(&b'/') && !c.journalctl.is_absolute()) {
                errors.push(ConfigError::RelativePath {
                    key: format!("{label} journalctl"),
                    path: c.journalctl.display().to_string(),
                });
            }
            if c.directory.is_some() && !c.files.is_empty() {
                errors.push(ConfigError::Conflict {
                    source_name: label.to_owned(),
                    a: "directory",
                    b: "files",
                });
            }
            for p in c.directory.iter().chain(&c.files) {
                if !p.is_absolute() {
                    errors.push(ConfigError::RelativePath {
                        key: format!("{label} directory/files"),
                        path: p.display().to_string(),
                    });
                }
            }
        }
    }
}

fn validate_sink_path(path: &Path, errors: &mut Vec<ConfigError>) {
    if !path.is_absolute() {
        errors.push(ConfigError::RelativePath {
            key: "[sink] path".to_owned(),
            path: path.display().to_string(),
        });
        return;
    }
    if path.is_dir() {
        errors.push(ConfigError::SinkPath {
            path: path.to_owned(),
            reason: "is a directory; name a file in it".to_owned(),
        });
        return;
    }
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        errors.push(ConfigError::SinkPath {
            path: path.to_owned(),
            reason: "names no file".to_owned(),
        });
        return;
    };
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => errors.push(ConfigError::SinkPath {
            path: path.to_owned(),
            reason: format!("{} is not a directory", dir.display()),
        }),
        Err(e) => errors.push(ConfigError::SinkPath {
            path: path.to_owned(),
            reason: format!(
                "its directory {} cannot be used ({e}); create it (`mkdir -p {}`)",
                dir.display(),
                dir.display()
            ),
        }),
    }
}

fn validate_collector(c: &CollectorConfig, errors: &mut Vec<ConfigError>) {
    let mut bad = |key: &'static str, reason: String| {
        errors.push(ConfigError::Collector { key, reason });
    };
    if let Err(reason) = crate::ship::CollectorUrl::parse(&c.url) {
        bad("url", reason);
    }
    if let Some(level) = c.compression_level {
        use crate::ship::batch::{GZIP_LEVEL, ZSTD_LEVEL};
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
                    "must be between {} and {} for this compression; the default is {default}",
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
            "must be greater than zero; the default is 5000".into(),
        );
    }
    if c.batch_max_bytes == 0 || c.batch_max_bytes > BATCH_MAX_BYTES_LIMIT {
        bad(
            "batch-max-bytes",
            format!(
                "must be between 1 and {BATCH_MAX_BYTES_LIMIT} (64 MiB, what the collector \
                 accepts decompressed); the default is 1048576"
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
    if c.spool.max_bytes < 2 * c.batch_max_bytes as u64 {
        bad(
            "spool.max-bytes",
            format!(
                "{} is less than twice batch-max-bytes ({}): the spool must hold at least two \
                 batches; the default is 268435456 (256 MiB)",
                c.spool.max_bytes, c.batch_max_bytes
            ),
        );
    }
    if let Some(proxy) = &c.proxy
        && let Err(reason) = crate::ship::ProxyUrl::parse(proxy)
    {
        bad("proxy", reason);
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
        if let Err(reason) = crate::ship::tls::decode_pin(pin) {
            bad("tls.pin-sha256", reason);
        }
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

/// Turns toml's error (a byte span and serde's message) into a [`ConfigError`] that names the
/// line, the table, the key, and for an unknown name the closest known one.
fn locate(err: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let mut message = err.message().trim_end().to_owned();
    let span = err.span();
    let mut offset = span.as_ref().map_or(0, |s| s.start);
    let mut section = section_at(text, offset);
    let mut key = key_at(text, offset);
    let tagged = section
        .as_deref()
        .is_some_and(|s| s.starts_with("[[source]]") || s == "[sink]");
    if let Some(found) = tagged.then(|| find_in_tagged(text)).flatten() {
        // serde buffers an internally tagged table (`type = ...`) before deserializing it, so
        // toml's span covers the whole array of tables: find the table and key ourselves.
        (offset, section, key, message) = found;
    } else if let (Some(span), Some((false, found, _))) = (span, parse_unknown(&message))
        && let Some(o) = find_key(text, span, &found)
    {
        offset = o;
    }
    let (line, column) = line_col(text, offset);
    let at = Box::new(Location {
        path: path.to_owned(),
        line,
        column,
        section,
    });
    match parse_unknown(&message) {
        Some((is_value, found, expected)) => ConfigError::Unknown {
            at,
            key: if is_value { key } else { None },
            is_value,
            suggestion: closest(&found, &expected),
            found,
            expected,
        },
        None => ConfigError::Syntax { at, key, message },
    }
}

/// The first `[[source]]` or `[sink]` table that does not deserialize: (offset of the offending
/// line, its section, its key, serde's message).
fn find_in_tagged(text: &str) -> Option<(usize, Option<String>, Option<String>, String)> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    if let Some(toml::Value::Array(items)) = doc.get("source") {
        for (i, item) in items.iter().enumerate() {
            if let toml::Value::Table(t) = item
                && let Some(found) =
                    locate_in_table::<SourceConfig>(text, &format!("[[source]] #{}", i + 1), t)
            {
                return Some(found);
            }
        }
    }
    if let Some(toml::Value::Table(t)) = doc.get("sink") {
        return locate_in_table::<SinkConfig>(text, "[sink]", t);
    }
    None
}

fn locate_in_table<T: serde::de::DeserializeOwned>(
    text: &str,
    label: &str,
    table: &toml::Table,
) -> Option<(usize, Option<String>, Option<String>, String)> {
    let try_table = |t: toml::Table| toml::Value::Table(t).try_into::<T>().err();
    let message = try_table(table.clone())?.message().trim_end().to_owned();
    // Which key: the one named in the message, else the one that fails on its own (with the
    // tag beside it, and all other fields defaulted).
    let key = match parse_unknown(&message) {
        Some((false, found, _)) => Some(found),
        // `type` first: with a bad tag every trial fails the same way.
        _ => table
            .get_key_value("type")
            .into_iter()
            .chain(table.iter().filter(|(k, _)| *k != "type"))
            .find(|(k, v)| {
                let mut alone = toml::Table::new();
                if let Some(tag) = table.get("type") {
                    alone.insert("type".to_owned(), tag.clone());
                }
                alone.insert((*k).clone(), (*v).clone());
                try_table(alone).is_some_and(|e| e.message().trim_end() == message)
            })
            .map(|(k, _)| k.clone()),
    };
    let lines: Vec<(usize, &str)> = sections(text)
        .filter(|(_, _, s)| s.as_deref() == Some(label))
        .map(|(start, line, _)| (start, line))
        .collect();
    let header = lines.first()?.0;
    let offset = key
        .as_deref()
        .and_then(|k| lines.iter().find(|(_, l)| line_key(l) == Some(k)))
        .map_or(header, |(start, line)| {
            start + (line.len() - line.trim_start().len())
        });
    Some((offset, Some(label.to_owned()), key, message))
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant ..."):
/// (is a variant, `x`, [`a`, `b`]).
fn parse_unknown(message: &str) -> Option<(bool, String, Vec<String>)> {
    let (is_value, rest) = if let Some(r) = message.strip_prefix("unknown field `") {
        (false, r)
    } else if let Some(r) = message.strip_prefix("unknown variant `") {
        (true, r)
    } else {
        return None;
    };
    let (found, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((is_value, found.to_owned(), expected))
}

/// The accepted name closest to `found`, if it is close enough to be a typo.
fn closest(found: &str, expected: &[String]) -> Option<String> {
    // `read_from` for `read-from`: the commonest slip in a kebab-case file.
    let kebab = found.replace('_', "-");
    if let Some(e) = expected.iter().find(|e| **e == kebab) {
        return Some(e.clone());
    }
    let limit = (found.chars().count() / 3).max(1);
    expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(&kebab, e), e))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e.clone())
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Lines of `text` with their byte offsets.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0, |pos, line| {
        let start = *pos;
        *pos += line.len();
        Some((start, line))
    })
}

/// The key set on a line (`key = value`), unquoted.
fn line_key(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with('[') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then_some(key)
}

/// The key on the line holding byte `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    lines_with_offsets(text)
        .take_while(|(start, _)| *start <= offset)
        .last()
        .and_then(|(_, line)| line_key(line))
        .map(str::to_owned)
}

/// Offset of the line in `span` that sets `key`.
fn find_key(text: &str, span: std::ops::Range<usize>, key: &str) -> Option<usize> {
    lines_with_offsets(text)
        .filter(|(start, line)| *start + line.len() > span.start && *start < span.end)
        .find(|(_, line)| line_key(line) == Some(key))
        .map(|(start, line)| start + (line.len() - line.trim_start().len()))
}

/// The table header in force at byte `offset`: `[[source]] #2`, `[sink]`; `None` at the top.
fn section_at(text: &str, offset: usize) -> Option<String> {
    sections(text)
        .take_while(|(start, _, _)| *start <= offset)
        .last()
        .and_then(|(_, _, section)| section)
}

/// Each line with its byte offset and the table it belongs to (`[[source]] #2`, `[sink]`, or
/// `None` at the top level); a header line belongs to its own table. A line scan, not a TOML
/// parse: good enough to point an operator at a line.
fn sections(text: &str) -> impl Iterator<Item = (usize, &str, Option<String>)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut section: Option<String> = None;
    lines_with_offsets(text).map(move |(start, line)| {
        let t = line.trim();
        if let Some(inner) = t.strip_prefix("[[") {
            let name = inner.split("]]").next().unwrap_or(inner).trim().to_owned();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 1));
                    1
                }
            };
            section = Some(format!("[[{name}]] #{n}"));
        } else if let Some(inner) = t.strip_prefix('[') {
            let name = inner.split(']').next().unwrap_or(inner).trim();
            section = Some(format!("[{name}]"));
        }
        (start, line, section.clone())
    })
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
pub fn default_sources(root: &Path) -> (Vec<SourceConfig>, String) {
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
        new.timezone = "+02:00".into();
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
        assert!(msg.contains("expected usize"), "{msg}");
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
        let errors = parse(text).unwrap().validate().unwrap_err();
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| {
            assert!(
                msgs.iter().any(|m| m.contains(needle)),
                "no {needle:?} in {msgs:#?}"
            );
        };
        has("state-dir = \"var/lib/authtrail\": must be an absolute path");
        has("hostname = \"\"");
        has("timezone = \"Mars/Olympus\": expected `local`, `UTC`");
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
            max_line_bytes: MAX_LINE_BYTES_LIMIT + 1,
            ..Config::default()
        };
        assert!(matches!(
            big.validate().unwrap_err()[..],
            [ConfigError::LineBound { .. }]
        ));
        let ok = Config {
            max_line_bytes: MAX_LINE_BYTES_LIMIT,
            timezone: "+05:30".into(),
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
