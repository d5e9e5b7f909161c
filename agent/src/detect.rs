//! `[detect]`: the agent's settings for agent-core's edge detections, and their translation into
//! the detector's [`DetectConfig`](agent_core::detect::DetectConfig).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timezone::Zone;

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
    /// after guessing elsewhere); for a password login from an address new for the user, over
    /// `slow-window`. Defaults to true.
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
    /// The slow rules' long window (also success-after-failures-by-user's for a password login
    /// from a new address). Defaults to 6h.
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
    /// The `*-threshold` settings by their names in the file (each must be at least 1).
    fn thresholds(&self) -> [(&'static str, u32); 3] {
        [
            ("brute-force-threshold", self.brute_force_threshold),
            ("spray-threshold", self.spray_threshold),
            (
                "success-after-failures-threshold",
                self.success_after_failures_threshold,
            ),
        ]
    }

    /// The zone working hours are in, when that rule is on: the renderer passes its offset at
    /// each event's time to the detector ([`crate::pipeline::Renderer::set_working_zone`]).
    pub fn working_zone(&self) -> Option<Zone> {
        if !(self.enabled && self.off_hours) {
            return None;
        }
        self.working_hours_zone.parse::<Zone>().ok()
    }

    /// The `*-threshold` keys set to 0: each must be at least 1.
    pub(crate) fn zero_thresholds(&self) -> impl Iterator<Item = &'static str> {
        self.thresholds()
            .into_iter()
            .filter(|&(_, value)| value == 0)
            .map(|(key, _)| key)
    }

    /// The detector's configuration; `seed` keys its hash tables (pass a random value).
    pub(crate) fn to_detect_config(&self, seed: u32) -> agent_core::detect::DetectConfig {
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
    pub(crate) fn problems(&self) -> Vec<String> {
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
