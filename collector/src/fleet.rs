//! Fleet detections: rules that only a view of every host can see, as a pure engine.
//!
//! No I/O and no clock. The caller feeds login events ([`Engine::observe`]), each agent's
//! contacts (batches and heartbeats, [`Engine::contact`]) and the passing of time
//! ([`Engine::tick`]); the engine keeps bounded state and hands back alerts
//! ([`Engine::take_alerts`]). The collector runs it on every committed batch
//! (`crate::alerts`); an offline evaluator drives it with [`evaluate`].
//!
//! The rules ([`FleetRule`]):
//! - **lateral movement**: one user, or one source address, logging in successfully on
//!   `lateral-hosts` or more hosts within `lateral-window`, with a login new for its user in
//!   the round (judged against the user's history, see `Engine::observe`); high with a new
//!   source in it, medium when only hosts were new;
//! - **first login to a host**: a user logging in on a host where the fleet never saw them log
//!   in, once the fleet and that host have been watched for `first-login-learning`; not inside
//!   a round the lateral-movement rule reports (that alert lists it: a first-login alert is
//!   held one `lateral-window` to know), nor for a user never seen before who comes from an
//!   address other users share (the new colleague), nor for a user the fleet saw go round its
//!   hosts from familiar places who comes from where they start their work or continues such
//!   a round (an admin reaching one more host; see `Engine::observe`);
//! - **distributed brute force / spray**: one source address, or one user name, failing on
//!   `failure-hosts` or more hosts within `failure-window`;
//! - **agent gone silent**: no batch, not even a heartbeat, from an agent for `silent-after`.
//!
//! A host is its agent's authenticated id, never the host name an event claims (that is only
//! shown). Login times are the events' own; silence is measured on the collector's clock.
//!
//! **One alert per attack.** An alert is an *episode*: it opens when a rule's threshold is met
//! and stays open while the same user or source keeps matching within the rule's window of the
//! last matching event; meanwhile the engine updates that one alert (end, counts, hosts) under
//! the same [`FleetAlert::key`]. The key is made of the rule, the subject and the episode's
//! start, all taken from the events, so replaying the same events gives the same keys.
//!
//! **Bounds.** Users and sources tracked per rule: `max-tracked` (when full, the eighth with
//! the fewest hosts and the oldest activity is dropped, so a flood of one-host sources does
//! not push out a source that spans hosts); hosts per tracked key: [`MAX_HOSTS_PER_KEY`];
//! (user, host) pairs known for first logins: `max-known-logins` (oldest eighth dropped);
//! agents: [`MAX_AGENTS`]; names, evidence and listed values per alert: [`MAX_NAME_BYTES`],
//! [`MAX_EVIDENCE`], [`MAX_LISTED`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Hosts remembered per tracked user or source (and the largest host threshold accepted).
pub(crate) const MAX_HOSTS_PER_KEY: usize = 64;
/// Users, sources or hosts named in one alert; beyond this they are only counted.
pub(crate) const MAX_LISTED: usize = 16;
/// Events quoted as evidence in one alert (the first on each host).
pub(crate) const MAX_EVIDENCE: usize = 16;
/// Agents followed for silence; when full, the eighth silent the longest is forgotten.
pub(crate) const MAX_AGENTS: usize = 100_000;
/// Longest user name or host name kept, bytes (cut at a character boundary).
pub(crate) const MAX_NAME_BYTES: usize = 256;
/// A full table drops this fraction of its entries at once (1/8), so eviction costs
/// O(log n) per insert amortised instead of a scan per insert.
pub(crate) const EVICT_DIVISOR: usize = 8;
/// A source this many users of the fleet already logged in from is shared (an office NAT, a
/// VPN): another user's first login from it is not from a new source (as the agents' first-seen
/// rule).
const SHARED_SOURCE_USERS: u32 = 2;
/// `event.severity` of what is worth a look today.
const MEDIUM: u8 = 47;
/// `event.severity` of what needs a look now.
const HIGH: u8 = 73;
/// Version of [`Engine::save`]'s bytes.
pub const STATE_VERSION: u32 = 4;
/// How long the fleet must have known a user (since their first login, event time) before a
/// source can be new for them: a day, as the agents' first-seen rule learns.
const SOURCE_HISTORY_US: i64 = 86_400 * 1_000_000;
/// User names the one-user-across-hosts failure rule skips: the internet guesses them on every
/// exposed host whatever the fleet, so their failures across hosts are background, not a spray
/// aimed at this fleet's accounts.
const BACKGROUND_NAMES: [&str; 1] = ["root"];

/// `[fleet]` in the collector's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FleetConfig {
    /// Run the fleet rules on every stored batch. Defaults to true.
    pub enabled: bool,
    /// Lateral movement: distinct hosts one user (or one source address) must log in on.
    /// Defaults to 3.
    pub lateral_hosts: usize,
    /// Lateral movement: the window those logins fall in. Defaults to 10 min.
    #[serde(with = "humantime_serde")]
    pub lateral_window: Duration,
    /// Distributed brute force / spray: distinct hosts one source (or one user) must fail on.
    /// Defaults to 3.
    pub failure_hosts: usize,
    /// Distributed brute force / spray: the window those failures fall in. Defaults to 1 h.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
    /// First login to a host: nothing is reported until the fleet, and each host, has been
    /// watched this long (by the events' time), so a new fleet or host does not alert on every
    /// login; until then a host new to a user is not "new" for lateral movement either.
    /// Defaults to 7 days.
    #[serde(with = "humantime_serde")]
    pub first_login_learning: Duration,
    /// An agent that sends nothing, not even a heartbeat (every 60 s by default), for this long
    /// raises an alert. Defaults to 10 min.
    #[serde(with = "humantime_serde")]
    pub silent_after: Duration,
    /// User names no fleet rule alerts on (automation accounts). Their events are still
    /// stored. Defaults to none.
    pub ignore_users: Vec<String>,
    /// Source networks (CIDR, or single addresses) no fleet rule alerts on (a bastion, a
    /// backup server). Defaults to none.
    pub ignore_sources: Vec<ipnet::IpNet>,
    /// Users and sources tracked per rule at once. Defaults to 10,000.
    pub max_tracked: usize,
    /// (user, host) pairs remembered for first logins, (user, source) pairs for lateral
    /// movement, and (user, source) pairs a user entered the fleet from, each table at most
    /// this many; the least recently used are forgotten beyond this (and count as new again).
    /// Also the users remembered as going round the fleet's hosts (the oldest round forgotten).
    /// Defaults to 100,000 (about 3 MiB a table).
    pub max_known_logins: usize,
    /// An agent's `first_seen_source` alert for a user and a network (/16, /48) another host
    /// already alerted on within this time (event time) is folded into that first alert, which
    /// lists the hosts and count it covers (`crate::fold`); 0 folds nothing. Defaults to
    /// 7 days.
    #[serde(with = "humantime_serde")]
    pub fold_window: Duration,
    /// A user's network (/16, /48) they logged in from on any host within this time (event
    /// time) is not new for them anywhere in the fleet: an agent's `first_seen_source` alert
    /// for it is not listed (its event stays stored; `crate::fold`). Likewise a user's sudo on
    /// any host within this time makes their `first_sudo` on another not news. 0 remembers
    /// nothing. Defaults to 30 days.
    #[serde(with = "humantime_serde")]
    pub network_memory: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            enabled: true,
            lateral_hosts: 3,
            lateral_window: Duration::from_secs(600),
            failure_hosts: 3,
            failure_window: Duration::from_secs(3600),
            first_login_learning: Duration::from_secs(7 * 86_400),
            silent_after: Duration::from_secs(600),
            ignore_users: Vec::new(),
            ignore_sources: Vec::new(),
            max_tracked: 10_000,
            max_known_logins: 100_000,
            fold_window: Duration::from_secs(7 * 86_400),
            network_memory: Duration::from_secs(30 * 86_400),
        }
    }
}

impl FleetConfig {
    /// Semantic checks: each problem as (key, what is wrong).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, n) in [
            ("[fleet] lateral-hosts", self.lateral_hosts),
            ("[fleet] failure-hosts", self.failure_hosts),
        ] {
            if !(2..=MAX_HOSTS_PER_KEY).contains(&n) {
                out.push((key, format!("{n}: must be from 2 to {MAX_HOSTS_PER_KEY}")));
            }
        }
        for (key, d) in [
            ("[fleet] lateral-window", self.lateral_window),
            ("[fleet] failure-window", self.failure_window),
            ("[fleet] silent-after", self.silent_after),
        ] {
            if d.is_zero() {
                out.push((key, "0: must be greater than zero".to_owned()));
            }
        }
        for (key, n) in [
            ("[fleet] max-tracked", self.max_tracked),
            ("[fleet] max-known-logins", self.max_known_logins),
        ] {
            if n < EVICT_DIVISOR {
                out.push((key, format!("{n}: must be at least {EVICT_DIVISOR}")));
            }
        }
        out
    }
}

/// The `n` items of lowest rank (in no particular order): what a full table drops. A
/// selection, not a sort: linear in the table's size.
fn lowest<O: Ord, K>(items: impl Iterator<Item = (O, K)>, n: usize) -> Vec<K> {
    let mut all: Vec<(O, K)> = items.collect();
    if n < all.len() {
        all.select_nth_unstable_by(n, |a, b| a.0.cmp(&b.0));
        all.truncate(n);
    }
    all.into_iter().map(|(_, k)| k).collect()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `s` cut to [`MAX_NAME_BYTES`] at a character boundary.
fn capped(s: &str) -> &str {
    let mut end = s.len().min(MAX_NAME_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An event being counted, borrowed: made into an owned [`Evidence`] only when kept (a new
/// host for a key, or an alert's evidence), not for every event.
#[derive(Debug, Clone, Copy)]
struct Seen<'a> {
    time_us: i64,
    agent: &'a str,
    hostname: Option<&'a str>,
    user: Option<&'a str>,
    source: Option<&'a str>,
    action: &'a str,
}

impl Seen<'_> {
    fn evidence(&self) -> Evidence {
        Evidence {
            time_us: self.time_us,
            host: HostRef {
                agent: self.agent.to_owned(),
                hostname: self.hostname.map(str::to_owned),
            },
            user: self.user.map(str::to_owned),
            source: self.source.map(str::to_owned),
            action: self.action.to_owned(),
        }
    }
}

impl Evidence {
    fn seen(&self) -> Seen<'_> {
        Seen {
            time_us: self.time_us,
            agent: &self.host.agent,
            hostname: self.host.hostname.as_deref(),
            user: self.user.as_deref(),
            source: self.source.as_deref(),
            action: &self.action,
        }
    }
}

/// A fleet rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FleetRule {
    /// One user logging in on several hosts within a window.
    LateralMovementUser,
    /// One source address logging in on several hosts within a window.
    LateralMovementSource,
    /// A user's first login to a host of the fleet.
    FirstLogin,
    /// One source address failing on several hosts within a window.
    FailuresSource,
    /// One user name failing on several hosts within a window.
    FailuresUser,
    /// An agent that stopped sending, heartbeats included.
    AgentSilent,
}

impl FleetRule {
    /// `rule.id`.
    pub const fn id(self) -> &'static str {
        match self {
            FleetRule::LateralMovementUser => "fleet_lateral_movement_user",
            FleetRule::LateralMovementSource => "fleet_lateral_movement_source",
            FleetRule::FirstLogin => "fleet_first_login",
            FleetRule::FailuresSource => "fleet_distributed_brute_force",
            FleetRule::FailuresUser => "fleet_distributed_spray",
            FleetRule::AgentSilent => "fleet_agent_silent",
        }
    }

    /// `rule.name`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            FleetRule::LateralMovementUser => "Lateral movement: one user on several hosts",
            FleetRule::LateralMovementSource => "Lateral movement: one source on several hosts",
            FleetRule::FirstLogin => "First login of a user to a host",
            FleetRule::FailuresSource => {
                "Distributed brute force: one source failing on several hosts"
            }
            FleetRule::FailuresUser => "Distributed spray: one user failing on several hosts",
            FleetRule::AgentSilent => "Agent gone silent",
        }
    }

    /// `event.severity` (0-100 as ECS; 21 low, 47 medium, 73 high: look now). A login that
    /// spreads across hosts is the stolen-account pattern this product exists for: high (a
    /// user's round where only hosts were new is medium: [`FleetAlert::severity`]).
    /// Failures that spread, a first login and a silent agent are worth a look: medium.
    pub(crate) const fn severity(self) -> u8 {
        match self {
            FleetRule::LateralMovementUser | FleetRule::LateralMovementSource => HIGH,
            FleetRule::FirstLogin
            | FleetRule::FailuresSource
            | FleetRule::FailuresUser
            | FleetRule::AgentSilent => MEDIUM,
        }
    }

    /// `event.outcome` of the alert: `success` when it is about logins that worked.
    pub(crate) const fn outcome(self) -> &'static str {
        match self {
            FleetRule::LateralMovementUser
            | FleetRule::LateralMovementSource
            | FleetRule::FirstLogin => "success",
            FleetRule::FailuresSource | FleetRule::FailuresUser => "failure",
            FleetRule::AgentSilent => "unknown",
        }
    }
}

/// One login event as the fleet rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetEvent<'a> {
    /// `@timestamp`, µs since the epoch.
    pub time_us: i64,
    /// The authenticated agent id: the host's identity.
    pub agent: &'a str,
    /// `host.hostname` (shown, not trusted).
    pub hostname: Option<&'a str>,
    /// `user.name`.
    pub user: Option<&'a str>,
    /// `source.ip`.
    pub source: Option<&'a str>,
    /// `event.action` (`auth_success`, `auth_failure`, `invalid_user`; others are ignored).
    pub action: &'a str,
    /// `event.outcome`.
    pub outcome: Option<&'a str>,
}

/// A host named in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRef {
    /// The agent id.
    pub agent: String,
    /// Its host name, as last reported.
    pub hostname: Option<String>,
}

impl HostRef {
    /// The host name, else the agent id.
    pub(crate) fn label(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.agent)
    }
}

/// An event an alert cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// `@timestamp`, µs.
    pub time_us: i64,
    /// Where.
    pub host: HostRef,
    /// `user.name`.
    pub user: Option<String>,
    /// `source.ip`.
    pub source: Option<String>,
    /// `event.action`.
    pub action: String,
}

/// A fleet alert: the whole episode so far. A later one with the same `key` replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAlert {
    /// The rule.
    pub rule: FleetRule,
    /// De-duplication key: rule, subject and episode start.
    pub key: String,
    /// The user it is about (user rules, first login).
    pub user: Option<String>,
    /// The source address it is about (source rules).
    pub source: Option<String>,
    /// The host it is about (first login, silent agent).
    pub host: Option<HostRef>,
    /// First event of the episode, µs.
    pub start_us: i64,
    /// Last event of the episode (silent agent: its return, or the last contact), µs.
    pub end_us: i64,
    /// Time of the event (or tick) that first raised it, µs: the detection time.
    pub fired_us: i64,
    /// Events counted.
    pub count: u64,
    /// Hosts involved (at most [`MAX_HOSTS_PER_KEY`]) and how many in all.
    pub hosts: Vec<HostRef>,
    /// Distinct hosts.
    pub hosts_total: u64,
    /// Users involved (at most [`MAX_LISTED`]).
    pub users: Vec<String>,
    /// Sources involved (at most [`MAX_LISTED`]).
    pub sources: Vec<String>,
    /// True when more users or sources were involved than listed.
    pub more_listed: bool,
    /// The first event on each host, up to [`MAX_EVIDENCE`].
    pub evidence: Vec<Evidence>,
    /// First login: the other hosts the user had logged in on before (0 otherwise).
    pub hosts_before: u64,
    /// `event.severity`: the rule's (`FleetRule::severity`), except a user's lateral
    /// movement whose logins all came from sources that user had used before (only a host was
    /// new: an admin's round reaching a host for the first time), which is medium until a
    /// login from a new source joins it.
    pub severity: u8,
}

impl FleetAlert {
    /// An alert of `rule` keyed by its subject and start, raised at `fired_us`, with nothing
    /// counted yet.
    fn open(rule: FleetRule, subject: &str, start_us: i64, fired_us: i64) -> FleetAlert {
        FleetAlert {
            rule,
            key: format!("{}:{subject}:{start_us}", rule.id()),
            user: None,
            source: None,
            host: None,
            start_us,
            end_us: start_us,
            fired_us,
            count: 0,
            hosts: Vec::new(),
            hosts_total: 0,
            users: Vec::new(),
            sources: Vec::new(),
            more_listed: false,
            evidence: Vec::new(),
            hosts_before: 0,
            severity: rule.severity(),
        }
    }

    /// `event.severity`.
    pub fn severity(&self) -> u8 {
        self.severity
    }

    /// The human sentence (`message`).
    pub fn message(&self) -> String {
        let span = humantime::format_duration(Duration::from_secs(
            (self.end_us.saturating_sub(self.start_us) / 1_000_000).max(0) as u64,
        ));
        let names = |hosts: &[HostRef]| {
            let mut s = hosts
                .iter()
                .take(MAX_LISTED)
                .map(HostRef::label)
                .collect::<Vec<_>>()
                .join(", ");
            if self.hosts_total as usize > MAX_LISTED.min(hosts.len()) {
                let _ = write!(
                    s,
                    " and {} more",
                    self.hosts_total as usize - MAX_LISTED.min(hosts.len())
                );
            }
            s
        };
        let list = |v: &[String]| {
            let mut s = v.join(", ");
            if self.more_listed {
                s.push_str(", ...");
            }
            s
        };
        let user = self.user.as_deref().unwrap_or("?");
        let source = self.source.as_deref().unwrap_or("?");
        let mut m = String::new();
        let _ = match self.rule {
            FleetRule::LateralMovementUser => write!(
                m,
                "User {user} logged in on {} hosts within {span}: {}",
                self.hosts_total,
                names(&self.hosts)
            )
            .and_then(|()| {
                if self.sources.is_empty() {
                    Ok(())
                } else {
                    write!(m, " (from {})", list(&self.sources))
                }
            }),
            FleetRule::LateralMovementSource => write!(
                m,
                "Source {source} logged in on {} hosts within {span}: {} (as {})",
                self.hosts_total,
                names(&self.hosts),
                list(&self.users)
            ),
            FleetRule::FirstLogin => {
                let host = self.host.as_ref().map_or("?", HostRef::label);
                write!(m, "User {user} logged in on {host} for the first time")
                    .and_then(|()| match &self.source {
                        Some(s) => write!(m, " (from {s})"),
                        None => Ok(()),
                    })
                    .and_then(|()| {
                        if self.hosts_before == 0 {
                            write!(m, "; the fleet never saw them log in before")
                        } else {
                            write!(
                                m,
                                "; before, they had logged in on {} other host{}",
                                self.hosts_before,
                                if self.hosts_before == 1 { "" } else { "s" }
                            )
                        }
                    })
            }
            FleetRule::FailuresSource => write!(
                m,
                "Source {source} failed to log in {} times on {} hosts within {span}: {} \
                 (users tried: {})",
                self.count,
                self.hosts_total,
                names(&self.hosts),
                list(&self.users)
            ),
            FleetRule::FailuresUser => write!(
                m,
                "User {user} failed to log in {} times on {} hosts within {span}: {} (from {})",
                self.count,
                self.hosts_total,
                names(&self.hosts),
                list(&self.sources)
            ),
            FleetRule::AgentSilent => {
                let host = self.host.as_ref().map_or("?", HostRef::label);
                let agent = self.host.as_ref().map_or("?", |h| h.agent.as_str());
                let quiet = humantime::format_duration(Duration::from_secs(
                    (self.fired_us.saturating_sub(self.start_us) / 1_000_000).max(0) as u64,
                ));
                write!(
                    m,
                    "The agent on {host} ({agent}) sent nothing, not even a heartbeat, for {quiet}"
                )
                .and_then(|()| {
                    if self.end_us > self.start_us {
                        write!(m, "; it came back after {span}")
                    } else {
                        Ok(())
                    }
                })
            }
        };
        m
    }
}

/// An agent as the silence rule follows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AgentInfo {
    hostname: Option<String>,
    /// Time of its first login event (event time), for the first-login learning period.
    first_event_us: Option<i64>,
    /// Collector time of its last batch (none yet: known from events only, as offline).
    last_contact_us: Option<i64>,
    /// The open silence alert, if any.
    silent: Option<FleetAlert>,
}

/// One host a tracked key reached in the window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hit {
    agent: String,
    last_us: i64,
    /// Events on this host in the window.
    count: u64,
    first: Evidence,
    /// One of its logins was new for its user (a source or a host the user never used).
    novel: bool,
    /// One of its logins came from a source new for its user.
    new_source: bool,
}

/// An open alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Episode {
    alert: FleetAlert,
    dirty: bool,
}

/// A user or source followed by one spread rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Track {
    newest_us: i64,
    /// No hit is older than this (a lower bound): pruning is skipped while it is in the window.
    oldest_us: i64,
    /// The hosts reached in the window, one entry each.
    hits: Vec<Hit>,
    episode: Option<Episode>,
}

/// One "N hosts within W" rule over one kind of key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Spread {
    tracks: HashMap<String, Track>,
}

impl Spread {
    /// Counts `ev` for `key`; opens or grows the episode when `hosts` are reached within
    /// `window` µs and, if `need_novel`, one of the hosts' events in the window was `novel`.
    /// A user's episode with no event `new_source` in it is medium (see
    /// [`FleetAlert::severity`]). True when `ev` opened or grew the episode.
    #[allow(clippy::too_many_arguments)] // One call per rule; a struct would only rename them.
    fn add(
        &mut self,
        rule: FleetRule,
        key: &str,
        ev: &Seen<'_>,
        hosts: usize,
        window: i64,
        max_tracked: usize,
        (novel, new_source, need_novel): (bool, bool, bool),
    ) -> bool {
        if !self.tracks.contains_key(key) {
            if self.tracks.len() >= max_tracked {
                self.evict(max_tracked);
            }
            self.tracks.insert(key.to_owned(), Track::default());
        }
        let Some(track) = self.tracks.get_mut(key) else {
            return false;
        };
        let t = ev.time_us;
        if t < track.newest_us.saturating_sub(window) {
            // Older than the window of what this key already did: too late to count.
            return false;
        }
        track.newest_us = track.newest_us.max(t);
        let floor = track.newest_us.saturating_sub(window);
        if track.oldest_us < floor {
            track.hits.retain(|h| h.last_us >= floor);
            track.oldest_us = track.hits.iter().map(|h| h.last_us).min().unwrap_or(t);
        }
        let mut new_hit = false;
        match track.hits.iter_mut().find(|h| h.agent == ev.agent) {
            Some(h) => {
                h.last_us = h.last_us.max(t);
                h.count += 1;
                h.novel |= novel;
                h.new_source |= new_source;
            }
            None => {
                new_hit = true;
                if track.hits.len() >= MAX_HOSTS_PER_KEY
                    && let Some(oldest) = track
                        .hits
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, h)| h.last_us)
                        .map(|(i, _)| i)
                {
                    track.hits.swap_remove(oldest);
                }
                track.oldest_us = if track.hits.is_empty() {
                    t
                } else {
                    track.oldest_us.min(t)
                };
                track.hits.push(Hit {
                    agent: ev.agent.to_owned(),
                    last_us: t,
                    count: 1,
                    first: ev.evidence(),
                    novel,
                    new_source,
                });
            }
        }
        // An episode ends once its key has been quiet for a whole window.
        if track
            .episode
            .as_ref()
            .is_some_and(|e| t > e.alert.end_us.saturating_add(window))
        {
            track.episode = None;
        }
        match &mut track.episode {
            Some(e) => {
                grow(&mut e.alert, ev, !new_hit);
                if new_source {
                    e.alert.severity = rule.severity();
                }
                e.dirty = true;
                true
            }
            None if track.hits.len() >= hosts
                && (!need_novel || track.hits.iter().any(|h| h.novel)) =>
            {
                let start_us = track
                    .hits
                    .iter()
                    .map(|h| h.first.time_us)
                    .min()
                    .unwrap_or(t);
                let mut alert = FleetAlert::open(rule, key, start_us, t);
                if rule == FleetRule::LateralMovementUser
                    && !track.hits.iter().any(|h| h.new_source)
                {
                    alert.severity = MEDIUM;
                }
                match rule {
                    FleetRule::LateralMovementUser | FleetRule::FailuresUser => {
                        alert.user = Some(key.to_owned());
                    }
                    _ => alert.source = Some(key.to_owned()),
                }
                let mut firsts: Vec<&Evidence> = track.hits.iter().map(|h| &h.first).collect();
                firsts.sort_by_key(|e| e.time_us);
                for first in firsts {
                    grow(&mut alert, &first.seen(), false);
                }
                // The hits' first events are counted above; this one too unless it is one of
                // them (the first on a host new to the key).
                if !new_hit {
                    grow(&mut alert, ev, true);
                }
                // Every event in the window counts, not only the ones quoted.
                alert.count = track.hits.iter().map(|h| h.count).sum();
                alert.end_us = alert.end_us.max(t);
                track.episode = Some(Episode { alert, dirty: true });
                true
            }
            None => false,
        }
    }

    /// True when `key` logged in on a host other than `agent` within `window` before `t`, from
    /// a source it had used before: a round entered from a familiar place, which the next
    /// login continues (from that host's address, new as it may be).
    fn continues_round(&self, key: &str, agent: &str, t: i64, window: i64) -> bool {
        self.tracks.get(key).is_some_and(|track| {
            track.hits.iter().any(|h| {
                h.agent != agent
                    && !h.new_source
                    && (t.saturating_sub(window)..=t).contains(&h.last_us)
            })
        })
    }

    /// True when `key` logged in on `hosts` or more hosts in its window, none of them from a
    /// source new for it: a round from familiar places (as an admin makes them).
    fn familiar_round(&self, key: &str, hosts: usize) -> bool {
        self.tracks
            .get(key)
            .is_some_and(|t| t.hits.len() >= hosts && t.hits.iter().all(|h| !h.new_source))
    }

    /// Drops the [`EVICT_DIVISOR`]th of the tracks with the fewest hosts, oldest first
    /// (never fewer than one).
    fn evict(&mut self, max_tracked: usize) {
        let drop = (max_tracked / EVICT_DIVISOR).max(1);
        let ranked = self
            .tracks
            .iter()
            .map(|(k, t)| ((t.hits.len(), t.newest_us), k));
        // Only the dropped keys are copied (out of the table's borrow).
        let gone: Vec<String> = lowest(ranked, drop).into_iter().cloned().collect();
        for k in gone {
            self.tracks.remove(&k);
        }
    }

    fn take_dirty(&mut self, out: &mut Vec<FleetAlert>) {
        for t in self.tracks.values_mut() {
            if let Some(e) = &mut t.episode
                && e.dirty
            {
                e.dirty = false;
                out.push(e.alert.clone());
            }
        }
    }
}

/// Adds one event to an alert: count, end, host, user, source, evidence.
///
/// `host_known`: the caller knows the host is already in the alert (a host in the key's window
/// is in its open episode), which spares the scan of the alert's hosts on most events.
fn grow(alert: &mut FleetAlert, ev: &Seen<'_>, host_known: bool) {
    alert.count += 1;
    alert.end_us = alert.end_us.max(ev.time_us);
    alert.start_us = alert.start_us.min(ev.time_us);
    if !host_known && !alert.hosts.iter().any(|h| h.agent == ev.agent) {
        alert.hosts_total += 1;
        let evidence = ev.evidence();
        if alert.hosts.len() < MAX_HOSTS_PER_KEY {
            alert.hosts.push(evidence.host.clone());
        }
        if alert.evidence.len() < MAX_EVIDENCE {
            alert.evidence.push(evidence);
        }
    }
    for (list, value) in [(&mut alert.users, ev.user), (&mut alert.sources, ev.source)] {
        // A full list with its overflow already flagged cannot change.
        if list.len() >= MAX_LISTED && alert.more_listed {
            continue;
        }
        if let Some(v) = value
            && !list.iter().any(|x| x == v)
        {
            if list.len() < MAX_LISTED {
                list.push(v.to_owned());
            } else {
                alert.more_listed = true;
            }
        }
    }
}

/// The key of a (user, host) pair: the first 8 bytes of SHA-256 over both (a stable hash,
/// unlike std's, so a saved state reads the same after a toolchain upgrade).
fn pair_key(user: &str, agent: &str) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(user.len() as u64).to_le_bytes());
    ctx.update(user.as_bytes());
    ctx.update(agent.as_bytes());
    let d = ctx.finish();
    let mut k = [0u8; 8];
    k.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(k)
}

/// Notes pair `key` seen at `t` in `known`, which holds at most `max` pairs (the least recently
/// seen [`EVICT_DIVISOR`]th goes when full); true when the pair was new.
fn remember(known: &mut HashMap<u64, i64>, key: u64, t: i64, max: usize) -> bool {
    if let Some(last) = known.get_mut(&key) {
        *last = (*last).max(t);
        return false;
    }
    if known.len() >= max {
        let ranked = known.iter().map(|(k, t)| (*t, *k));
        for k in lowest(ranked, (max / EVICT_DIVISOR).max(1)) {
            known.remove(&k);
        }
    }
    known.insert(key, t);
    true
}

/// What the fleet knows of a user who logged in.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct UserHistory {
    /// Hosts they logged in on, as counted.
    hosts: u64,
    /// Their first login's time (event time, µs).
    since_us: i64,
}

/// Everything the engine remembers; what [`Engine::save`] writes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// The first login event's time: the fleet's learning period starts here.
    first_us: Option<i64>,
    /// When the caller last (re)started the engine, collector time: silence is counted from
    /// no earlier than this (the collector's own downtime is not the agents' silence).
    resumed_us: i64,
    agents: HashMap<String, AgentInfo>,
    lateral_user: Spread,
    lateral_source: Spread,
    failures_source: Spread,
    failures_user: Spread,
    /// (user, host) pair key -> last login time.
    known: HashMap<u64, i64>,
    /// (user, source) pair key -> last login time: where each user logs in from, bounded as
    /// `known`.
    known_sources: HashMap<u64, i64>,
    /// (user, source) pair key -> last login time, for the logins that entered the fleet
    /// (that continued no round, see `Spread::continues_round`): where each user starts from
    /// (a workstation, the office, the VPN), as opposed to the inside address of a host they
    /// went on from. Bounded as `known`.
    entries: HashMap<u64, i64>,
    /// Users the fleet saw go round `lateral-hosts` hosts within `lateral-window` with no new
    /// source in it (an admin's round) -> the time of the last such round; at most
    /// `max-known-logins` users (the eighth with the oldest rounds dropped when full).
    rounds: HashMap<String, i64>,
    /// Users -> hosts they logged in on, as counted (for first-login messages), and when the
    /// fleet first saw them log in.
    user_hosts: HashMap<String, UserHistory>,
    /// Sources -> users seen logging in from them, counted up to [`SHARED_SOURCE_USERS`]
    /// (at most `max-known-logins` sources).
    source_users: HashMap<String, u32>,
    /// First-login alerts held for one `lateral-window` (event time; the collector's clock in
    /// [`Engine::tick`]): one that turns out to open a round the lateral rule reports is
    /// dropped, as that alert lists its host. At most `max-tracked` (the oldest is released
    /// early beyond).
    held: Vec<FleetAlert>,
    /// One-off alerts (first logins, silences) not yet taken.
    #[serde(skip)]
    ready: Vec<FleetAlert>,
    /// Some episode opened or grew since the last [`Engine::take_alerts`].
    #[serde(skip)]
    grown: bool,
}

/// [`State`] as version 3 wrote it: without `entries` and `rounds`, and without when each user
/// was first seen. Read once at an upgrade ([`Engine::restore`]), so that what the fleet learnt
/// (known hosts and sources, the learning period's start, open rounds, held alerts) is kept.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct StateV3 {
    version: u32,
    first_us: Option<i64>,
    resumed_us: i64,
    agents: HashMap<String, AgentInfo>,
    lateral_user: Spread,
    lateral_source: Spread,
    failures_source: Spread,
    failures_user: Spread,
    known: HashMap<u64, i64>,
    known_sources: HashMap<u64, i64>,
    user_hosts: HashMap<String, u64>,
    source_users: HashMap<String, u32>,
    held: Vec<FleetAlert>,
}

impl StateV3 {
    /// The same memory as version 4. The new tables start empty (they fill as they did from a
    /// fresh start, and until then the rules judge as version 3 did); a user already known is
    /// taken as known since the fleet's first login (no later than any of theirs).
    fn upgrade(self) -> State {
        debug_assert_eq!(self.version, 3, "only version 3 is read as StateV3");
        let since_us = self.first_us.unwrap_or(i64::MIN);
        State {
            version: STATE_VERSION,
            first_us: self.first_us,
            resumed_us: self.resumed_us,
            agents: self.agents,
            lateral_user: self.lateral_user,
            lateral_source: self.lateral_source,
            failures_source: self.failures_source,
            failures_user: self.failures_user,
            known: self.known,
            known_sources: self.known_sources,
            entries: HashMap::new(),
            rounds: HashMap::new(),
            user_hosts: self
                .user_hosts
                .into_iter()
                .map(|(user, hosts)| (user, UserHistory { hosts, since_us }))
                .collect(),
            source_users: self.source_users,
            held: self.held,
            ready: Vec::new(),
            grown: false,
        }
    }
}

/// Why saved state was not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RestoreError {
    /// Not decodable.
    #[error("fleet detector state does not decode: {0}")]
    Decode(String),
    /// Written by another version.
    #[error("fleet detector state is version {found}, this collector reads {STATE_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
}

/// The fleet detector.
#[derive(Debug, Clone)]
pub struct Engine {
    config: FleetConfig,
    state: State,
}

impl Engine {
    /// A new engine, knowing nothing; the fleet's learning period starts at its first event.
    pub fn new(config: FleetConfig) -> Engine {
        Engine {
            config,
            state: State {
                version: STATE_VERSION,
                ..State::default()
            },
        }
    }

    /// The engine's memory as versioned bytes (postcard).
    pub(crate) fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.state).unwrap_or_default()
    }

    /// An engine with `config` and the memory [`Engine::save`] wrote, by this version or the
    /// one before it (upgraded: [`StateV3`]).
    pub(crate) fn restore(config: FleetConfig, bytes: &[u8]) -> Result<Engine, RestoreError> {
        let decode = |e: postcard::Error| RestoreError::Decode(e.to_string());
        let (version, _) = postcard::take_from_bytes::<u32>(bytes).map_err(decode)?;
        let state = match version {
            STATE_VERSION => postcard::from_bytes::<State>(bytes).map_err(decode)?,
            3 => postcard::from_bytes::<StateV3>(bytes)
                .map_err(decode)?
                .upgrade(),
            found => return Err(RestoreError::Version { found }),
        };
        Ok(Engine { config, state })
    }

    /// The caller (re)starts at collector time `now_us`: agents' silence is counted from no
    /// earlier than this.
    pub(crate) fn resume(&mut self, now_us: i64) {
        self.state.resumed_us = self.state.resumed_us.max(now_us);
    }

    fn ignored(&self, user: Option<&str>, source: Option<&str>) -> bool {
        user.is_some_and(|u| self.config.ignore_users.iter().any(|i| i == u))
            || (!self.config.ignore_sources.is_empty()
                && source
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|ip| self.config.ignore_sources.iter().any(|n| n.contains(&ip))))
    }

    /// Entries in the engine's tables: (tracked keys over all spread rules, known pairs,
    /// agents). For tests and status.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let s = &self.state;
        (
            s.lateral_user.tracks.len()
                + s.lateral_source.tracks.len()
                + s.failures_source.tracks.len()
                + s.failures_user.tracks.len(),
            s.known.len(),
            s.agents.len(),
        )
    }

    fn agent_entry(&mut self, agent: &str, hostname: Option<&str>) -> &mut AgentInfo {
        let agents = &mut self.state.agents;
        if !agents.contains_key(agent) {
            if agents.len() >= MAX_AGENTS {
                let ranked = agents
                    .iter()
                    .map(|(k, a)| (a.last_contact_us.unwrap_or(i64::MIN), k));
                let gone: Vec<String> = lowest(ranked, MAX_AGENTS / EVICT_DIVISOR)
                    .into_iter()
                    .cloned()
                    .collect();
                for k in gone {
                    agents.remove(&k);
                }
            }
            agents.insert(
                agent.to_owned(),
                AgentInfo {
                    hostname: None,
                    first_event_us: None,
                    last_contact_us: None,
                    silent: None,
                },
            );
        }
        let info = agents.get_mut(agent).expect("inserted above");
        if let Some(h) = hostname
            && info.hostname.as_deref() != Some(h)
        {
            info.hostname = Some(capped(h).to_owned());
        }
        info
    }

    /// A batch (or heartbeat) from `agent` arrived at collector time `now_us`. Ends its
    /// silence alert, if one is open.
    pub fn contact(&mut self, agent: &str, hostname: Option<&str>, now_us: i64) {
        let info = self.agent_entry(agent, hostname);
        info.last_contact_us = Some(info.last_contact_us.map_or(now_us, |t| t.max(now_us)));
        if let Some(mut alert) = info.silent.take() {
            alert.end_us = now_us;
            self.state.ready.push(alert);
        }
    }

    /// Collector time is now `now_us`: raises an alert for each agent silent for
    /// `silent-after` (counted from no earlier than [`Engine::resume`]).
    pub fn tick(&mut self, now_us: i64) {
        self.release(now_us);
        let quiet = micros(self.config.silent_after);
        let resumed = self.state.resumed_us;
        for (agent, info) in &mut self.state.agents {
            let Some(last) = info.last_contact_us else {
                continue;
            };
            let since = last.max(resumed);
            if info.silent.is_none() && now_us.saturating_sub(since) >= quiet {
                let host = HostRef {
                    agent: agent.clone(),
                    hostname: info.hostname.clone(),
                };
                let mut alert = FleetAlert::open(FleetRule::AgentSilent, agent, last, now_us);
                alert.host = Some(host.clone());
                alert.hosts = vec![host];
                alert.hosts_total = 1;
                self.state.ready.push(alert.clone());
                info.silent = Some(alert);
            }
        }
    }

    /// Counts one event. Only `auth_success` with outcome `success`, and `auth_failure` /
    /// `invalid_user`, matter; the rest is ignored.
    pub(crate) fn observe(&mut self, ev: &FleetEvent<'_>) {
        let success = ev.action == "auth_success" && ev.outcome == Some("success");
        let failure =
            matches!(ev.action, "auth_failure" | "invalid_user") && ev.outcome != Some("success");
        if !success && !failure {
            return;
        }
        let t = ev.time_us;
        self.release(t);
        let first = *self.state.first_us.get_or_insert(t);
        self.state.first_us = Some(first.min(t));
        // One lookup for a known agent (the common case), not the entry's two.
        let info = match self.state.agents.get_mut(ev.agent) {
            Some(info) => info,
            None => self.agent_entry(ev.agent, ev.hostname),
        };
        let host_first = info.first_event_us.map_or(t, |f| f.min(t));
        info.first_event_us = Some(host_first);
        if self.ignored(ev.user, ev.source) {
            return;
        }
        let evidence = Seen {
            time_us: t,
            agent: ev.agent,
            hostname: ev.hostname.map(capped),
            user: ev.user.map(capped),
            source: ev.source,
            action: ev.action,
        };
        let c = &self.config;
        let max = c.max_tracked;
        if success {
            let (hosts, window) = (c.lateral_hosts, micros(c.lateral_window));
            let learnt = micros(c.first_login_learning);
            let fleet_first = self.state.first_us.unwrap_or(t);
            let learning =
                t < fleet_first.saturating_add(learnt) || t < host_first.saturating_add(learnt);
            // Admins go round the hosts they look after, from where they always work: what
            // lateral movement needs on top is one login new for its user: from a source or
            // to a host that user never used (user rule), from a source that never carried
            // that user (source rule: an office NAT or a VPN carries many users, each on their
            // own round). New means new against a history: a host is new only once the fleet
            // and that host have been watched for the first-login learning period (before,
            // every host is new to everyone), a source only for a user the fleet has seen log
            // in before (a user's first login comes from some source), and not when the user's
            // round entered the fleet from a source they had used before: then the new source
            // is the host they just logged in on (a jump host's inside address), and how the
            // round entered is what tells the owner from a thief. Nor is a source other users
            // share (an office NAT, a VPN) new. An event without a user is always new. A user
            // seen for less than `SOURCE_HISTORY_US` has too few sources to judge a new one
            // against (their first day: home, office, VPN, phone), as the agents' first-seen
            // rule learns a day.
            let since = evidence
                .user
                .and_then(|u| self.state.user_hosts.get(u))
                .map(|h| h.since_us);
            let history = since.is_some();
            let settled = since.is_some_and(|f| t.saturating_sub(f) >= SOURCE_HISTORY_US);
            let shared = ev.source.is_some_and(|s| {
                self.state
                    .source_users
                    .get(s)
                    .is_some_and(|&n| n >= SHARED_SOURCE_USERS)
            });
            let (new_host, new_source, routine) = match evidence.user {
                Some(u) => {
                    let new_host = !self.state.known.contains_key(&pair_key(u, ev.agent));
                    let new_source = ev.source.is_some_and(|s| {
                        let new = remember(
                            &mut self.state.known_sources,
                            pair_key(u, s),
                            t,
                            c.max_known_logins,
                        );
                        let users = &mut self.state.source_users;
                        if new
                            && !shared
                            && (users.len() < c.max_known_logins || users.contains_key(s))
                        {
                            *users.entry(s.to_owned()).or_default() += 1;
                        }
                        new && !shared
                    });
                    let hop = self
                        .state
                        .lateral_user
                        .continues_round(u, ev.agent, t, window);
                    // A host new to someone who goes round the fleet's hosts (the fleet saw
                    // them do it) is routine when they come from where they start their work
                    // (a source they entered the fleet from before) or go on in a round they
                    // entered from a familiar place: an admin reaching one more host. Not from
                    // a host's inside address they never started from with no round of theirs
                    // open (someone on that host using their account), nor from a new network.
                    let entered = ev.source.is_some_and(|s| {
                        let key = pair_key(u, s);
                        let entered = self.state.entries.contains_key(&key);
                        if !hop {
                            remember(&mut self.state.entries, key, t, c.max_known_logins);
                        }
                        entered
                    });
                    let routine = self.state.rounds.contains_key(u) && (hop || entered);
                    (
                        new_host && !learning && !routine,
                        new_source && settled && !hop,
                        routine,
                    )
                }
                None => (true, true, false),
            };
            let mut in_round = false;
            if let Some(u) = evidence.user {
                in_round = self.state.lateral_user.add(
                    FleetRule::LateralMovementUser,
                    u,
                    &evidence,
                    hosts,
                    window,
                    max,
                    (new_host || new_source, new_source, true),
                );
                self.state.grown |= in_round;
                if self.state.lateral_user.familiar_round(u, hosts) {
                    let rounds = &mut self.state.rounds;
                    if !rounds.contains_key(u) && rounds.len() >= c.max_known_logins {
                        let ranked = rounds.iter().map(|(k, t)| (*t, k));
                        let gone: Vec<String> =
                            lowest(ranked, (c.max_known_logins / EVICT_DIVISOR).max(1))
                                .into_iter()
                                .cloned()
                                .collect();
                        for k in gone {
                            rounds.remove(&k);
                        }
                    }
                    rounds.insert(u.to_owned(), t);
                }
            }
            if let Some(s) = ev.source {
                self.state.grown |= self.state.lateral_source.add(
                    FleetRule::LateralMovementSource,
                    s,
                    &evidence,
                    hosts,
                    window,
                    max,
                    (new_source, new_source, true),
                );
            }
            if let (Some(u), true) = (evidence.user, in_round) {
                // The round's earlier first logins, held until now, are that alert's too.
                let floor = t.saturating_sub(window);
                self.state
                    .held
                    .retain(|a| a.user.as_deref() != Some(u) || a.fired_us < floor);
            }
            if let Some(u) = evidence.user {
                // A first login inside a round the lateral-movement rule reports is one
                // incident: that alert lists the host, a second alert would only repeat it.
                // A user the fleet never saw log in, coming from an address other users share
                // (the office), is a new colleague, as the agents' new-account rule has it.
                // Nor is a host an admin's round reaches from a familiar place (`routine`).
                self.first_login(
                    u,
                    &evidence,
                    learning || in_round || routine || (!history && shared),
                );
            }
        } else {
            let (hosts, window) = (c.failure_hosts, micros(c.failure_window));
            if let Some(s) = ev.source {
                self.state.grown |= self.state.failures_source.add(
                    FleetRule::FailuresSource,
                    s,
                    &evidence,
                    hosts,
                    window,
                    max,
                    (true, true, false),
                );
            }
            // Only failures against an account of the fleet (a name some host let in: sshd
            // reports an unknown name's password failure as an auth_failure too) can spray it.
            // Nor is root's name news: every scanner on the internet guesses it on every
            // exposed host, all day; guesses at root are the per-host rules' and, from one
            // source, the source rule's.
            if ev.action == "auth_failure"
                && let Some(u) = evidence.user.filter(|u| {
                    !BACKGROUND_NAMES.contains(u) && self.state.user_hosts.contains_key(*u)
                })
            {
                self.state.grown |= self.state.failures_user.add(
                    FleetRule::FailuresUser,
                    u,
                    &evidence,
                    hosts,
                    window,
                    max,
                    (true, true, false),
                );
            }
        }
    }

    /// Records a successful login of `user` on the evidence's host; raises a first-login alert
    /// when the pair is new, unless `quiet` (the learning period, or a round another alert
    /// reports).
    fn first_login(&mut self, user: &str, ev: &Seen<'_>, quiet: bool) {
        let key = pair_key(user, ev.agent);
        if !remember(
            &mut self.state.known,
            key,
            ev.time_us,
            self.config.max_known_logins,
        ) {
            return;
        }
        let before = self.state.user_hosts.get(user).map_or(0, |h| h.hosts);
        if self.state.user_hosts.len() < self.config.max_known_logins
            || self.state.user_hosts.contains_key(user)
        {
            let h = self
                .state
                .user_hosts
                .entry(user.to_owned())
                .or_insert(UserHistory {
                    hosts: 0,
                    since_us: ev.time_us,
                });
            h.hosts += 1;
            h.since_us = h.since_us.min(ev.time_us);
        }
        if quiet {
            return;
        }
        let t = ev.time_us;
        let mut alert =
            FleetAlert::open(FleetRule::FirstLogin, &format!("{user}:{}", ev.agent), t, t);
        grow(&mut alert, ev, false);
        alert.user = Some(user.to_owned());
        alert.source = ev.source.map(str::to_owned);
        alert.host = alert.hosts.first().cloned();
        alert.hosts_before = before;
        if self.state.held.len() >= self.config.max_tracked.max(1) {
            let oldest = self.state.held.remove(0);
            self.state.ready.push(oldest);
        }
        self.state.held.push(alert);
    }

    /// Hands the held first-login alerts older than one `lateral-window` at `now_us` over to
    /// [`Engine::take_alerts`] (all of them for `i64::MAX`).
    fn release(&mut self, now_us: i64) {
        let window = micros(self.config.lateral_window);
        if self
            .state
            .held
            .first()
            .is_some_and(|a| a.fired_us.saturating_add(window) < now_us)
        {
            let (due, keep) = std::mem::take(&mut self.state.held)
                .into_iter()
                .partition(|a| a.fired_us.saturating_add(window) < now_us);
            self.state.held = keep;
            self.state.ready.extend::<Vec<FleetAlert>>(due);
        }
    }

    /// True when [`Engine::take_alerts`] has something to give.
    pub(crate) fn has_alerts(&self) -> bool {
        self.state.grown || !self.state.ready.is_empty()
    }

    /// The alerts raised or changed since the last call: each a whole episode so far (a later
    /// one with the same key replaces an earlier one).
    pub fn take_alerts(&mut self) -> Vec<FleetAlert> {
        let s = &mut self.state;
        let mut out = std::mem::take(&mut s.ready);
        if !std::mem::take(&mut s.grown) {
            return out;
        }
        for spread in [
            &mut s.lateral_user,
            &mut s.lateral_source,
            &mut s.failures_source,
            &mut s.failures_user,
        ] {
            spread.take_dirty(&mut out);
        }
        out
    }
}

/// Runs the fleet rules over `events` (in order) with `config`, as the offline evaluator does:
/// every alert, once, in its final form, in the order first raised. No silence rule (there are
/// no contacts).
pub fn evaluate<'a>(
    config: &FleetConfig,
    events: impl IntoIterator<Item = FleetEvent<'a>>,
) -> Vec<FleetAlert> {
    let mut engine = Engine::new(config.clone());
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, FleetAlert> = HashMap::new();
    let mut keep = |alerts: Vec<FleetAlert>| {
        for a in alerts {
            if !latest.contains_key(&a.key) {
                order.push(a.key.clone());
            }
            latest.insert(a.key.clone(), a);
        }
    };
    for ev in events {
        engine.observe(&ev);
        keep(engine.take_alerts());
    }
    engine.release(i64::MAX);
    keep(engine.take_alerts());
    order
        .into_iter()
        .filter_map(|k| latest.remove(&k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const MIN: i64 = 60 * S;
    /// A time well after any learning period starts.
    const T0: i64 = 1_767_225_600 * S;

    fn ev<'a>(
        t: i64,
        agent: &'a str,
        user: &'a str,
        source: &'a str,
        action: &'a str,
    ) -> FleetEvent<'a> {
        FleetEvent {
            time_us: t,
            agent,
            hostname: Some(agent),
            user: Some(user),
            source: Some(source),
            action,
            outcome: Some(if action == "auth_success" {
                "success"
            } else {
                "failure"
            }),
        }
    }

    fn ok<'a>(t: i64, agent: &'a str, user: &'a str, source: &'a str) -> FleetEvent<'a> {
        ev(t, agent, user, source, "auth_success")
    }

    fn fail<'a>(t: i64, agent: &'a str, user: &'a str, source: &'a str) -> FleetEvent<'a> {
        ev(t, agent, user, source, "auth_failure")
    }

    /// Only the rules under test: first logins learn forever.
    fn config() -> FleetConfig {
        FleetConfig {
            first_login_learning: Duration::from_secs(100 * 365 * 86_400),
            ..FleetConfig::default()
        }
    }

    /// A login of each user a month before `T0` on `h0`, each from an address of their own: the
    /// history a "new source" is judged against.
    fn history<'a>(users: &[&'a str]) -> Vec<FleetEvent<'a>> {
        const HOMES: [&str; 4] = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
        users
            .iter()
            .zip(HOMES)
            .map(|(u, home)| ok(T0 - 30 * 86_400 * S, "h0", u, home))
            .collect()
    }

    fn rules(alerts: &[FleetAlert], rule: FleetRule) -> Vec<&FleetAlert> {
        alerts.iter().filter(|a| a.rule == rule).collect()
    }

    /// An admin's round over hosts they use, from where they always come: routine, not
    /// lateral movement. The same round with one new thing (a source the account never used,
    /// a host it never reached) is: high for a new source, medium for only a new host.
    #[test]
    fn lateral_movement_needs_something_new_in_the_round() {
        let day = 86_400 * S;
        // The fleet and every host learnt for a day before T0.
        let c = FleetConfig {
            first_login_learning: Duration::from_secs(86_400),
            ..FleetConfig::default()
        };
        // Known before: bob on h1..h3 from the office; the office NAT used by carol too
        // (once: not yet shared); carol on h4.
        let mut history = vec![];
        for (k, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
            history.push(ok(
                T0 - day + k as i64 * 3600 * S,
                h,
                "bob",
                "198.51.100.10",
            ));
        }
        history.push(ok(T0 - day, "h4", "carol", "198.51.100.10"));
        let routine = [
            ok(T0, "h1", "bob", "198.51.100.10"),
            ok(T0 + MIN, "h2", "bob", "198.51.100.10"),
            ok(T0 + 2 * MIN, "h3", "carol", "198.51.100.10"),
            ok(T0 + 3 * MIN, "h3", "bob", "198.51.100.10"),
        ];
        let alerts = evaluate(&c, history.iter().copied().chain(routine));
        assert!(alerts.is_empty(), "{alerts:#?}");
        // The same round from an address bob never used: both lateral rules, high.
        let mut stolen = routine;
        for e in &mut stolen {
            e.source = Some("203.0.113.7");
        }
        stolen[2].user = Some("bob");
        let alerts = evaluate(&c, history.iter().copied().chain(stolen));
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), HIGH);
        let source = rules(&alerts, FleetRule::LateralMovementSource);
        assert_eq!(source.len(), 1, "{alerts:#?}");
        assert_eq!(source[0].severity(), HIGH);
        // From the office, but on a host bob never reached: the user rule, at medium (his
        // round, from where he always works, reached a host for the first time).
        let mut new_host = routine;
        new_host[2] = ok(T0 + 2 * MIN, "h4", "bob", "198.51.100.10");
        let alerts = evaluate(&c, history.iter().copied().chain(new_host));
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), MEDIUM);
        // ... and not the source rule: the office carries no account it never carried.
        assert!(rules(&alerts, FleetRule::LateralMovementSource).is_empty());
        // A login from a new address joining that round makes it high, unless it continues
        // the round from one of its hosts (a hop: see `new_means_new_against_a_history`).
        let mut grown: Vec<_> = history.iter().copied().chain(new_host).collect();
        grown.push(ok(T0 + 12 * MIN, "h3", "bob", "198.51.100.10"));
        let hop = evaluate(
            &c,
            grown
                .iter()
                .copied()
                .chain([ok(T0 + 13 * MIN, "h1", "bob", "203.0.113.7")]),
        );
        assert_eq!(
            rules(&hop, FleetRule::LateralMovementUser)[0].severity(),
            MEDIUM
        );
        // h3 alone in the window now: the new address is no hop from another host.
        grown.push(ok(T0 + 14 * MIN, "h3", "bob", "203.0.113.7"));
        let alerts = evaluate(&c, grown);
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), HIGH);
    }

    /// "New" is judged against a history: not for a user the fleet never saw log in, not for a
    /// host while the fleet learns, not for the inside address of the host a round entered from
    /// a familiar place, not for an address other users share.
    #[test]
    fn new_means_new_against_a_history() {
        let c = config();
        // No history: a user's first logins anywhere are new to nothing.
        let first_round = [
            ok(T0, "h1", "dave", "203.0.113.7"),
            ok(T0 + MIN, "h2", "dave", "203.0.113.7"),
            ok(T0 + 2 * MIN, "h3", "dave", "203.0.113.7"),
        ];
        let alerts = evaluate(&c, first_round);
        assert!(alerts.is_empty(), "{alerts:#?}");
        // While the fleet learns, a host new to a user is not news: bob, from his address,
        // on three hosts he never used.
        let new_hosts = [
            ok(T0, "h1", "bob", "192.0.2.1"),
            ok(T0 + MIN, "h2", "bob", "192.0.2.1"),
            ok(T0 + 2 * MIN, "h3", "bob", "192.0.2.1"),
        ];
        let alerts = evaluate(&c, history(&["bob"]).into_iter().chain(new_hosts));
        assert!(alerts.is_empty(), "{alerts:#?}");
        // In on the jump host from his own address, then on from its inside address: his
        // round, not a thief's.
        let via_jump = |entry: &'static str| {
            history(&["bob"]).into_iter().chain([
                ok(T0, "jump", "bob", entry),
                ok(T0 + MIN, "h1", "bob", "10.0.1.3"),
                ok(T0 + 2 * MIN, "h2", "bob", "10.0.1.3"),
                ok(T0 + 3 * MIN, "h3", "bob", "10.0.1.3"),
            ])
        };
        let alerts = evaluate(&c, via_jump("192.0.2.1"));
        assert!(alerts.is_empty(), "{alerts:#?}");
        // The same hops after an entry from an address bob never used: both rules, high.
        let alerts = evaluate(&c, via_jump("203.0.113.7"));
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), HIGH);
        assert_eq!(rules(&alerts, FleetRule::LateralMovementSource).len(), 1);
        // An address two other users log in from is shared (a VPN): bob's first round from
        // it is not from a new source. One other user is not enough.
        let vpn = |others: &'static [&'static str]| {
            let mut v = history(&["bob"]);
            v.extend(
                others
                    .iter()
                    .map(|u| ok(T0 - 86_400 * S, "h9", u, "198.51.100.200")),
            );
            v.extend([
                ok(T0, "h1", "bob", "198.51.100.200"),
                ok(T0 + MIN, "h2", "bob", "198.51.100.200"),
                ok(T0 + 2 * MIN, "h3", "bob", "198.51.100.200"),
            ]);
            v
        };
        let alerts = evaluate(&c, vpn(&["carol", "erin"]));
        assert!(alerts.is_empty(), "{alerts:#?}");
        let alerts = evaluate(&c, vpn(&["carol"]));
        assert_eq!(rules(&alerts, FleetRule::LateralMovementUser).len(), 1);
        // A user known for less than a day has no sources to judge a new one against (their
        // first day: office, home, phone); from a day on, they have.
        let known_for = |age: i64| {
            [
                ok(T0 - age, "h0", "bob", "192.0.2.1"),
                ok(T0, "h1", "bob", "203.0.113.7"),
                ok(T0 + MIN, "h2", "bob", "203.0.113.7"),
                ok(T0 + 2 * MIN, "h3", "bob", "203.0.113.7"),
            ]
        };
        let alerts = evaluate(&c, known_for(SOURCE_HISTORY_US - 1));
        assert!(alerts.is_empty(), "{alerts:#?}");
        let alerts = evaluate(&c, known_for(SOURCE_HISTORY_US));
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), HIGH);
    }

    /// A first login inside a round the lateral-movement rule reports is that alert's, not one
    /// more; a first login on its own still alerts.
    #[test]
    fn a_first_login_inside_a_reported_round_is_one_alert() {
        let day = 86_400 * S;
        let c = FleetConfig {
            first_login_learning: Duration::from_secs(86_400),
            ..FleetConfig::default()
        };
        let mut events = vec![
            ok(T0 - day, "h1", "alice", "192.0.2.1"),
            ok(T0 - day, "h2", "alice", "192.0.2.1"),
            ok(T0 - day, "h3", "bob", "192.0.2.2"),
            ok(T0 - day, "h4", "bob", "192.0.2.2"),
            ok(T0 - day, "h5", "bob", "192.0.2.2"),
        ];
        // alice's round: two hosts she knows, then two she never used.
        events.extend([
            ok(T0, "h1", "alice", "192.0.2.1"),
            ok(T0 + MIN, "h2", "alice", "192.0.2.1"),
            ok(T0 + 2 * MIN, "h3", "alice", "192.0.2.1"),
            ok(T0 + 3 * MIN, "h4", "alice", "192.0.2.1"),
        ]);
        let alerts = evaluate(&c, events.clone());
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, FleetRule::LateralMovementUser);
        assert_eq!(alerts[0].hosts_total, 4);
        // The new hosts first, then the known ones: the first logins, held one lateral window,
        // are dropped when the round is reported.
        let mut reversed = events.clone();
        let n = reversed.len();
        reversed[n - 4..].reverse();
        for (k, e) in reversed[n - 4..].iter_mut().enumerate() {
            e.time_us = T0 + k as i64 * MIN;
        }
        let alerts = evaluate(&c, reversed);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, FleetRule::LateralMovementUser);
        // A day later, alone on a host she never used, from a host's inside address she never
        // started from (her own address would be her round's routine, see
        // `a_host_new_to_an_admin_is_judged_by_where_the_login_comes_from`): its own alert,
        // handed over once a lateral window has passed (by the events' time, or the
        // collector's clock).
        events.push(ok(T0 + day, "h5", "alice", "10.0.1.3"));
        let alerts = evaluate(&c, events.clone());
        let first = rules(&alerts, FleetRule::FirstLogin);
        assert_eq!(first.len(), 1, "{alerts:#?}");
        assert_eq!(first[0].user.as_deref(), Some("alice"));
        assert_eq!(first[0].fired_us, T0 + day);
        let w = micros(c.lateral_window);
        let mut engine = Engine::new(c.clone());
        for e in &events {
            engine.observe(e);
        }
        assert!(rules(&engine.take_alerts(), FleetRule::FirstLogin).is_empty());
        engine.tick(T0 + day + w);
        assert!(
            engine.take_alerts().is_empty(),
            "exactly one window: still held"
        );
        engine.tick(T0 + day + w + 1);
        assert_eq!(rules(&engine.take_alerts(), FleetRule::FirstLogin).len(), 1);
        // Held alerts are bounded: beyond max-tracked the oldest is handed over early.
        let mut engine = Engine::new(FleetConfig {
            max_tracked: 4,
            ..c.clone()
        });
        for e in &events[..5] {
            engine.observe(e);
        }
        for i in 0..10 {
            let user = format!("u{i}");
            engine.observe(&ok(
                T0 + day + i * S,
                "h5",
                &user,
                &format!("192.0.2.{}", 10 + i),
            ));
            assert!(engine.state.held.len() <= 4);
        }
        assert_eq!(engine.take_alerts().len(), 6);
    }

    /// A host new to someone who goes round the fleet (the fleet saw them do it, from familiar
    /// places) is routine from where they start their work, or on a round they entered from
    /// there; it is news from a host's inside address with no round of theirs open, from a new
    /// network, and for someone never seen going round.
    #[test]
    fn a_host_new_to_an_admin_is_judged_by_where_the_login_comes_from() {
        let day = 86_400 * S;
        let c = FleetConfig {
            first_login_learning: Duration::from_secs(86_400),
            ..FleetConfig::default()
        };
        const OFFICE: &str = "198.51.100.10";
        const JUMP: &str = "10.0.1.3";
        let h0 = T0 - 2 * day;
        let history = vec![
            // Every host watched since two days before T0.
            ok(h0, "h4", "zed", "192.0.2.9"),
            ok(h0, "jump", "zed", "192.0.2.9"),
            // bob goes round h1..h3 from the office, and round h1, h2 through the jump host.
            ok(h0 + 3600 * S, "h1", "bob", OFFICE),
            ok(h0 + 3600 * S + MIN, "h2", "bob", OFFICE),
            ok(h0 + 3600 * S + 2 * MIN, "h3", "bob", OFFICE),
            ok(h0 + 7200 * S, "jump", "bob", OFFICE),
            ok(h0 + 7200 * S + MIN, "h1", "bob", JUMP),
            ok(h0 + 7200 * S + 2 * MIN, "h2", "bob", JUMP),
            // carol uses h1..h3 from the office, hours apart: never a round.
            ok(h0 + 3 * 3600 * S, "h1", "carol", "192.0.2.3"),
            ok(h0 + 4 * 3600 * S, "h2", "carol", "192.0.2.3"),
            ok(h0 + 5 * 3600 * S, "h3", "carol", "192.0.2.3"),
            // erin's only round came from an address new for her (known a day).
            ok(h0 - day, "h1", "erin", "192.0.2.4"),
            ok(h0 + 6 * 3600 * S, "h1", "erin", "203.0.113.7"),
            ok(h0 + 6 * 3600 * S + MIN, "h2", "erin", "203.0.113.7"),
            ok(h0 + 6 * 3600 * S + 2 * MIN, "h3", "erin", "203.0.113.7"),
        ];
        let after = |events: &[FleetEvent<'static>]| {
            let alerts = evaluate(&c, history.iter().chain(events).copied());
            alerts
                .into_iter()
                .filter(|a| a.start_us >= T0)
                .collect::<Vec<_>>()
        };
        // bob's round from the office reaches h4, new to him: routine, no alert at all.
        let direct = [
            ok(T0, "h1", "bob", OFFICE),
            ok(T0 + MIN, "h2", "bob", OFFICE),
            ok(T0 + 2 * MIN, "h4", "bob", OFFICE),
        ];
        let alerts = after(&direct);
        assert!(alerts.is_empty(), "{alerts:#?}");
        // So is h4 alone from the office, and on a round through the jump host.
        let alerts = after(&[ok(T0, "h4", "bob", OFFICE)]);
        assert!(alerts.is_empty(), "{alerts:#?}");
        let via_jump = [
            ok(T0, "jump", "bob", OFFICE),
            ok(T0 + MIN, "h4", "bob", JUMP),
        ];
        let alerts = after(&via_jump);
        assert!(alerts.is_empty(), "{alerts:#?}");
        // From the jump host's inside address with no round of his open (he never started
        // from there): someone on that host using his account.
        let alerts = after(&[ok(T0, "h4", "bob", JUMP)]);
        let first = rules(&alerts, FleetRule::FirstLogin);
        assert_eq!(first.len(), 1, "{alerts:#?}");
        assert_eq!(first[0].source.as_deref(), Some(JUMP));
        // From a network bob never used.
        let alerts = after(&[ok(T0, "h4", "bob", "203.0.113.99")]);
        assert_eq!(
            rules(&alerts, FleetRule::FirstLogin).len(),
            1,
            "{alerts:#?}"
        );
        // carol never went round: her first login to h4 is news, from her usual address too,
        // and her round reaching it is lateral movement (medium: only a host was new).
        let alerts = after(&[ok(T0, "h4", "carol", "192.0.2.3")]);
        assert_eq!(
            rules(&alerts, FleetRule::FirstLogin).len(),
            1,
            "{alerts:#?}"
        );
        let round = [
            ok(T0, "h1", "carol", "192.0.2.3"),
            ok(T0 + MIN, "h2", "carol", "192.0.2.3"),
            ok(T0 + 2 * MIN, "h4", "carol", "192.0.2.3"),
        ];
        let alerts = after(&round);
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        assert_eq!(user[0].severity(), MEDIUM);
        // A round from a new address teaches nothing: erin on h4 from home is news.
        let alerts = after(&[ok(T0, "h4", "erin", "192.0.2.4")]);
        assert_eq!(
            rules(&alerts, FleetRule::FirstLogin).len(),
            1,
            "{alerts:#?}"
        );
    }

    #[test]
    fn lateral_movement_needs_n_distinct_hosts() {
        let c = config();
        // N-1 hosts, however many logins: nothing.
        let two = [
            ok(T0, "h1", "alice", "10.0.0.5"),
            ok(T0 + S, "h2", "alice", "10.0.0.6"),
            ok(T0 + 2 * S, "h2", "alice", "10.0.0.7"),
            ok(T0 + 3 * S, "h1", "alice", "10.0.0.8"),
        ];
        assert!(evaluate(&c, history(&["alice"]).into_iter().chain(two)).is_empty());
        // N hosts: one alert per rule, naming the hosts.
        let three = [
            ok(T0, "h1", "alice", "10.0.0.5"),
            ok(T0 + S, "h2", "alice", "10.0.0.5"),
            ok(T0 + 2 * S, "h3", "alice", "10.0.0.5"),
        ];
        let alerts = evaluate(&c, history(&["alice"]).into_iter().chain(three));
        let user = rules(&alerts, FleetRule::LateralMovementUser);
        assert_eq!(user.len(), 1, "{alerts:#?}");
        let a = user[0];
        assert_eq!(a.user.as_deref(), Some("alice"));
        assert_eq!((a.hosts_total, a.count), (3, 3));
        assert_eq!(
            (a.start_us, a.end_us, a.fired_us),
            (T0, T0 + 2 * S, T0 + 2 * S)
        );
        assert_eq!(a.evidence.len(), 3);
        assert_eq!(
            a.message(),
            "User alice logged in on 3 hosts within 2s: h1, h2, h3 (from 10.0.0.5)"
        );
        assert_eq!(a.severity(), 73);
        let source = rules(&alerts, FleetRule::LateralMovementSource);
        assert_eq!(source.len(), 1);
        assert_eq!(source[0].source.as_deref(), Some("10.0.0.5"));
        assert_eq!(alerts.len(), 2);
    }

    #[test]
    fn lateral_movement_source_counts_hosts_not_users() {
        let c = config();
        // One source, three hosts, three different users: the source rule only.
        let alerts = evaluate(
            &c,
            history(&["a", "b", "c"]).into_iter().chain([
                ok(T0, "h1", "a", "10.0.0.5"),
                ok(T0 + S, "h2", "b", "10.0.0.5"),
                ok(T0 + 2 * S, "h3", "c", "10.0.0.5"),
            ]),
        );
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, FleetRule::LateralMovementSource);
        assert_eq!(alerts[0].users, ["a", "b", "c"]);
    }

    #[test]
    fn lateral_movement_window_edges() {
        let c = config();
        let w = micros(c.lateral_window);
        let evaluate = |c: &FleetConfig, round: [FleetEvent<'static>; 3]| {
            evaluate(c, history(&["alice"]).into_iter().chain(round))
        };
        // The first and the last login exactly W apart: within.
        let at_edge = [
            ok(T0, "h1", "alice", "10.0.0.1"),
            ok(T0 + w / 2, "h2", "alice", "10.0.0.2"),
            ok(T0 + w, "h3", "alice", "10.0.0.3"),
        ];
        assert_eq!(
            rules(&evaluate(&c, at_edge), FleetRule::LateralMovementUser).len(),
            1
        );
        // One microsecond more: the first host has left the window.
        let past = [
            ok(T0, "h1", "alice", "10.0.0.1"),
            ok(T0 + w / 2, "h2", "alice", "10.0.0.2"),
            ok(T0 + w + 1, "h3", "alice", "10.0.0.3"),
        ];
        assert!(evaluate(&c, past).is_empty());
        // A login on the first host again keeps it in the window.
        let renewed = [
            ok(T0, "h1", "alice", "10.0.0.1"),
            ok(T0 + w / 2, "h1", "alice", "10.0.0.1"),
            ok(T0 + w / 2, "h2", "alice", "10.0.0.2"),
            ok(T0 + w + 1, "h3", "alice", "10.0.0.3"),
        ];
        let renewed = super::evaluate(&c, history(&["alice"]).into_iter().chain(renewed));
        assert_eq!(rules(&renewed, FleetRule::LateralMovementUser).len(), 1);
        // An event older than the key's window arrives late: not counted.
        let late = [
            ok(T0 + 2 * w, "h1", "alice", "10.0.0.1"),
            ok(T0 + 2 * w, "h2", "alice", "10.0.0.2"),
            ok(T0, "h3", "alice", "10.0.0.3"),
        ];
        assert!(evaluate(&c, late).is_empty());
    }

    #[test]
    fn one_alert_per_attack_and_a_new_one_after_a_quiet_window() {
        let c = config();
        let w = micros(c.lateral_window);
        let mut engine = Engine::new(c);
        for e in history(&["alice"]) {
            engine.observe(&e);
        }
        for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
            engine.observe(&ok(T0 + i as i64 * S, h, "alice", "10.0.0.1"));
        }
        let first = engine.take_alerts();
        let key = rules(&first, FleetRule::LateralMovementUser)[0].key.clone();
        // More of the same attack, in several batches: the same alert, grown.
        engine.observe(&ok(T0 + 10 * S, "h4", "alice", "10.0.0.1"));
        let grown = engine.take_alerts();
        let g = rules(&grown, FleetRule::LateralMovementUser);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].key.as_str(), g[0].hosts_total, g[0].count),
            (key.as_str(), 4, 4)
        );
        assert!(
            engine.take_alerts().is_empty(),
            "nothing new, nothing taken"
        );
        engine.observe(&ok(T0 + 10 * S + w, "h4", "alice", "10.0.0.1"));
        assert_eq!(
            rules(&engine.take_alerts(), FleetRule::LateralMovementUser)[0].key,
            key,
            "exactly W after the last event: the same attack"
        );
        // Quiet for more than W, then three hosts again (from a new address: the same
        // round from a known one is routine): a new alert.
        let later = T0 + 10 * S + 2 * w + 1;
        for (i, h) in ["h1", "h2", "h3"].iter().enumerate() {
            engine.observe(&ok(later + i as i64 * S, h, "alice", "10.0.0.2"));
        }
        let again = engine.take_alerts();
        let a = rules(&again, FleetRule::LateralMovementUser);
        assert_eq!(a.len(), 1);
        assert_ne!(a[0].key, key);
        assert_eq!(a[0].start_us, later);
    }

    #[test]
    fn distributed_failures_need_n_hosts_per_source_and_per_user() {
        let c = config();
        let w = micros(c.failure_window);
        let two = [
            fail(T0, "h1", "root", "203.0.113.9"),
            fail(T0 + S, "h2", "root", "203.0.113.9"),
            fail(T0 + 2 * S, "h2", "admin", "203.0.113.9"),
        ];
        assert!(evaluate(&c, two).is_empty());
        let three = [
            fail(T0, "h1", "root", "203.0.113.9"),
            fail(T0 + S, "h2", "admin", "203.0.113.9"),
            ev(T0 + w, "h3", "oracle", "203.0.113.9", "invalid_user"),
        ];
        let alerts = evaluate(&c, three);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.rule, FleetRule::FailuresSource);
        assert_eq!((a.count, a.hosts_total), (3, 3));
        assert_eq!(a.users, ["root", "admin", "oracle"]);
        assert!(
            a.message()
                .starts_with("Source 203.0.113.9 failed to log in 3 times on 3 hosts")
        );
        // Every failure in the window is counted, not one per host.
        let repeated = [
            fail(T0, "h1", "root", "203.0.113.9"),
            fail(T0 + S, "h1", "root", "203.0.113.9"),
            fail(T0 + 2 * S, "h1", "admin", "203.0.113.9"),
            fail(T0 + 3 * S, "h2", "admin", "203.0.113.9"),
            fail(T0 + 4 * S, "h3", "admin", "203.0.113.9"),
        ];
        let alerts = evaluate(&c, repeated);
        assert_eq!(
            (alerts[0].count, alerts[0].hosts_total),
            (5, 3),
            "{alerts:#?}"
        );
        // Past the window's edge: nothing.
        let past = [
            fail(T0, "h1", "root", "203.0.113.9"),
            fail(T0 + S, "h2", "admin", "203.0.113.9"),
            fail(T0 + w + 1, "h3", "oracle", "203.0.113.9"),
        ];
        assert!(evaluate(&c, past).is_empty());
        // A name no host ever let in (sshd's `Failed password for invalid user` is an
        // auth_failure too): not an account of the fleet, no spray of it.
        let unknown = [
            fail(T0, "h1", "alice", "198.51.100.1"),
            fail(T0 + S, "h2", "alice", "198.51.100.2"),
            fail(T0 + 2 * S, "h3", "alice", "198.51.100.3"),
        ];
        assert!(evaluate(&c, unknown).is_empty());
        // One user of the fleet from three sources on three hosts: the spray rule.
        let spray = [
            ok(T0 - 86_400 * S, "h9", "alice", "10.0.0.1"),
            fail(T0, "h1", "alice", "198.51.100.1"),
            fail(T0 + S, "h2", "alice", "198.51.100.2"),
            fail(T0 + 2 * S, "h3", "alice", "198.51.100.3"),
        ];
        let alerts = evaluate(&c, spray);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, FleetRule::FailuresUser);
        assert_eq!(alerts[0].sources.len(), 3);
        // root, guessed on every exposed host by scanners all day: no spray of it (a source
        // guessing it across hosts is still the source rule's).
        let root = [
            fail(T0, "h1", "root", "198.51.100.1"),
            fail(T0 + S, "h2", "root", "198.51.100.2"),
            fail(T0 + 2 * S, "h3", "root", "198.51.100.3"),
        ];
        assert!(evaluate(&c, root).is_empty());
        // Invalid users are not accounts: no spray of them.
        let invalid = [
            ev(T0, "h1", "zz", "198.51.100.1", "invalid_user"),
            ev(T0 + S, "h2", "zz", "198.51.100.2", "invalid_user"),
            ev(T0 + 2 * S, "h3", "zz", "198.51.100.3", "invalid_user"),
        ];
        assert!(evaluate(&c, invalid).is_empty());
        // Successes are not failures, and failures are not logins.
        let mixed = [
            ok(T0, "h1", "alice", "198.51.100.1"),
            fail(T0 + S, "h2", "alice", "198.51.100.2"),
            fail(T0 + 2 * S, "h3", "alice", "198.51.100.3"),
        ];
        assert!(evaluate(&c, mixed).is_empty());
    }

    #[test]
    fn first_login_to_a_host_after_learning() {
        let c = FleetConfig {
            first_login_learning: Duration::from_secs(86_400),
            ..FleetConfig::default()
        };
        let day = 86_400 * S;
        let events = [
            // Learning: the fleet's (and each host's) first day.
            ok(T0, "h1", "alice", "10.0.0.1"),
            ok(T0, "h3", "bob", "10.0.0.2"),
            ok(T0 + day - 1, "h2", "alice", "10.0.0.1"),
            // After it: a known pair, then alice on h3 for the first time.
            ok(T0 + day, "h3", "bob", "10.0.0.2"),
            ok(T0 + day, "h3", "alice", "10.0.0.9"),
            ok(T0 + day + S, "h3", "alice", "10.0.0.9"),
        ];
        let alerts = evaluate(&c, events);
        let first = rules(&alerts, FleetRule::FirstLogin);
        assert_eq!(first.len(), 1, "{alerts:#?}");
        let a = first[0];
        assert_eq!(a.host.as_ref().map(HostRef::label), Some("h3"));
        assert_eq!(a.start_us, T0 + day);
        assert_eq!((a.hosts_total, a.hosts_before, a.count), (1, 2, 1));
        assert_eq!(
            a.message(),
            "User alice logged in on h3 for the first time (from 10.0.0.9); before, they had \
             logged in on 2 other hosts"
        );
        // A host that joins later learns on its own first day.
        let joined = [
            ok(T0, "h1", "alice", "10.0.0.1"),
            ok(T0 + 2 * day, "h9", "carol", "10.0.0.1"),
            ok(T0 + 3 * day - 1, "h9", "alice", "10.0.0.1"),
            ok(T0 + 3 * day, "h9", "dave", "10.0.0.2"),
        ];
        let alerts = evaluate(&c, joined);
        let first = rules(&alerts, FleetRule::FirstLogin);
        assert_eq!(first.len(), 1, "{alerts:#?}");
        assert_eq!(first[0].user.as_deref(), Some("dave"));
        // A user never seen before, from the address two other users share (the office): the
        // new colleague, not news; from the address only one other user had: news.
        for (others, want) in [(&["carol", "erin"][..], 0), (&["carol"][..], 1)] {
            let mut v = vec![ok(T0, "h1", "alice", "10.0.0.1")];
            v.extend(others.iter().map(|u| ok(T0 + S, "h1", u, "198.51.100.10")));
            v.push(ok(T0 + 2 * day, "h1", "fred", "198.51.100.10"));
            let alerts = evaluate(&c, v);
            assert_eq!(
                rules(&alerts, FleetRule::FirstLogin).len(),
                want,
                "{others:?}"
            );
        }
        assert!(
            first[0]
                .message()
                .ends_with("the fleet never saw them log in before")
        );
    }

    #[test]
    fn ignored_users_and_sources_raise_nothing() {
        let c = FleetConfig {
            ignore_users: vec!["backup".to_owned()],
            ignore_sources: vec!["10.9.0.0/16".parse().unwrap()],
            ..config()
        };
        let hosts = ["h1", "h2", "h3"];
        let known = || history(&["backup", "a", "b", "c"]);
        let backup: Vec<_> = hosts
            .iter()
            .map(|h| ok(T0, h, "backup", "198.51.100.1"))
            .collect();
        assert!(evaluate(&c, known().into_iter().chain(backup)).is_empty());
        let bastion: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| ok(T0, h, ["a", "b", "c"][i], "10.9.3.4"))
            .collect();
        assert!(evaluate(&c, known().into_iter().chain(bastion)).is_empty());
        // Outside the network: alerts.
        let other: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| ok(T0, h, ["a", "b", "c"][i], "10.10.3.4"))
            .collect();
        assert_eq!(evaluate(&c, known().into_iter().chain(other)).len(), 1);
        // The backup user from outside the ignored networks: alerts (it is the user list
        // that keeps it quiet above).
        let backup_elsewhere: Vec<_> = hosts
            .iter()
            .map(|h| ok(T0, h, "backup", "198.51.100.1"))
            .collect();
        let c2 = FleetConfig {
            ignore_users: vec![],
            ..c.clone()
        };
        assert!(!evaluate(&c2, known().into_iter().chain(backup_elsewhere)).is_empty());
    }

    #[test]
    fn a_flood_of_one_host_sources_stays_bounded_and_keeps_the_attacker() {
        let c = FleetConfig {
            max_tracked: 1000,
            ..config()
        };
        let mut engine = Engine::new(c.clone());
        engine.observe(&fail(T0, "h1", "root", "203.0.113.9"));
        engine.observe(&fail(T0 + S, "h2", "root", "203.0.113.9"));
        for i in 0..20_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            engine.observe(&ev(T0 + 2 * S, "h1", "x", &ip, "invalid_user"));
            // The flood's sources, plus `root` in the spray rule's table.
            let (tracked, _, _) = engine.sizes();
            assert!(tracked <= c.max_tracked + 1, "{tracked}");
        }
        assert!(engine.take_alerts().is_empty());
        engine.observe(&fail(T0 + 3 * S, "h3", "root", "203.0.113.9"));
        let alerts = engine.take_alerts();
        assert_eq!(
            rules(&alerts, FleetRule::FailuresSource)[0]
                .source
                .as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn one_user_on_a_hundred_hosts_is_one_bounded_alert() {
        let hosts: Vec<String> = (0..100).map(|i| format!("h{i:03}")).collect();
        let events: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| ok(T0 + i as i64 * S, h, "alice", "10.0.0.1"))
            .collect();
        let mut engine = Engine::new(config());
        for e in history(&["alice"]).iter().chain(&events) {
            engine.observe(e);
        }
        let alerts = engine.take_alerts();
        let a = rules(&alerts, FleetRule::LateralMovementUser)[0];
        assert_eq!((a.hosts_total, a.count), (100, 100));
        assert_eq!(a.hosts.len(), MAX_HOSTS_PER_KEY);
        assert_eq!(a.evidence.len(), MAX_EVIDENCE);
        assert!(
            a.message().contains(", h015 and 84 more (from 10.0.0.1)"),
            "{}",
            a.message()
        );
        let track = &engine.state.lateral_user.tracks["alice"];
        assert_eq!(track.hits.len(), MAX_HOSTS_PER_KEY);
    }

    #[test]
    fn agents_stay_bounded() {
        let mut engine = Engine::new(FleetConfig::default());
        for i in 0..MAX_AGENTS + 10 {
            engine.contact(&format!("agent-{i}"), None, i as i64);
        }
        assert!(engine.sizes().2 <= MAX_AGENTS);
        // The ones silent longest went first.
        assert!(!engine.state.agents.contains_key("agent-0"));
        assert!(
            engine
                .state
                .agents
                .contains_key(&format!("agent-{}", MAX_AGENTS + 9))
        );
    }

    #[test]
    fn known_logins_stay_bounded() {
        let c = FleetConfig {
            max_known_logins: 64,
            first_login_learning: Duration::ZERO,
            ..FleetConfig::default()
        };
        let mut engine = Engine::new(c);
        // Each user from an address of their own (none shared).
        let from = |i: i64| format!("10.1.{}.{}", i / 256, i % 256);
        for i in 0..1000 {
            let user = format!("u{i}");
            engine.observe(&ok(T0 + i * S, "h1", &user, &from(i)));
            assert!(engine.sizes().1 <= 64);
            assert!(engine.state.source_users.len() <= 64);
        }
        // First logins are held one lateral window, then handed over.
        let later = T0 + 2000 * S;
        engine.tick(later);
        assert_eq!(engine.take_alerts().len(), 1000, "every pair was new");
        // The most recent pairs are remembered; the oldest were forgotten (and alert again).
        engine.observe(&ok(later, "h1", "u999", &from(999)));
        engine.observe(&ok(later, "h1", "u0", &from(0)));
        engine.tick(later + 1000 * S);
        assert_eq!(rules(&engine.take_alerts(), FleetRule::FirstLogin).len(), 1);
        assert!(engine.state.entries.len() <= 64);
        // Users going round three hosts each, from where they entered: the sources they
        // entered from and the users who went round stay bounded too.
        let start = later + 2000 * S;
        for i in 0..1000 {
            let user = format!("r{i}");
            for (k, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
                engine.observe(&ok(start + i * 600 * S + k as i64 * S, h, &user, &from(i)));
            }
            assert!(engine.state.entries.len() <= 64);
            assert!(engine.state.rounds.len() <= 64);
        }
        assert!(
            engine.state.rounds.contains_key("r999"),
            "the newest round is kept"
        );
    }

    #[test]
    fn a_silent_agent_alerts_once_and_a_heartbeating_one_never() {
        let c = FleetConfig::default();
        let quiet = micros(c.silent_after);
        let now = T0;
        let mut engine = Engine::new(c);
        engine.resume(now);
        engine.contact("a-beats", Some("web1"), now);
        engine.contact("a-stops", Some("web2"), now);
        // The heartbeating agent writes every minute; the other stops.
        let mut t = now;
        while t < now + 3 * quiet {
            t += MIN;
            engine.contact("a-beats", Some("web1"), t);
            engine.tick(t - 1);
            let alerts = engine.take_alerts();
            if t - 1 < now + quiet {
                assert!(alerts.is_empty(), "at {} s: {alerts:#?}", (t - now) / S);
            }
        }
        // Exactly at the boundary: one alert, for the silent agent only.
        let mut engine2 = Engine::new(FleetConfig::default());
        engine2.resume(now);
        engine2.contact("a-stops", Some("web2"), now);
        engine2.tick(now + quiet - 1);
        assert!(engine2.take_alerts().is_empty());
        engine2.tick(now + quiet);
        let alerts = engine2.take_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].rule, FleetRule::AgentSilent);
        assert_eq!(alerts[0].host.as_ref().map(HostRef::label), Some("web2"));
        engine2.tick(now + 2 * quiet);
        assert!(engine2.take_alerts().is_empty(), "once per silence");
        // It comes back: the same alert, now with its end.
        engine2.contact("a-stops", Some("web2"), now + 3 * quiet);
        let back = engine2.take_alerts();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].key.as_str(), back[0].end_us),
            (alerts[0].key.as_str(), now + 3 * quiet)
        );
        assert!(
            back[0].message().contains("came back after 30m"),
            "{}",
            back[0].message()
        );
        // The collector's own downtime is not the agents' silence.
        let mut engine3 = Engine::new(FleetConfig::default());
        engine3.resume(now);
        engine3.contact("a", None, now);
        engine3.resume(now + 5 * quiet);
        engine3.tick(now + 5 * quiet + quiet - 1);
        assert!(engine3.take_alerts().is_empty());
        engine3.tick(now + 6 * quiet);
        assert_eq!(engine3.take_alerts().len(), 1);
    }

    #[test]
    fn the_heartbeating_agent_in_the_loop_above_never_alerted() {
        let c = FleetConfig::default();
        let mut engine = Engine::new(c);
        engine.resume(T0);
        for i in 0..100 {
            let t = T0 + i * MIN;
            engine.contact("a", None, t);
            engine.tick(t + MIN - 1);
            assert!(engine.take_alerts().is_empty());
        }
    }

    #[test]
    fn saved_state_continues_the_same_attack() {
        let c = config();
        let mut engine = Engine::new(c.clone());
        for e in history(&["alice"]) {
            engine.observe(&e);
        }
        engine.observe(&ok(T0, "h1", "alice", "10.0.0.1"));
        engine.observe(&ok(T0 + S, "h2", "alice", "10.0.0.1"));
        engine.observe(&ok(T0 + 2 * S, "h3", "alice", "10.0.0.1"));
        let before = engine.take_alerts();
        let mut restored = Engine::restore(c.clone(), &engine.save()).unwrap();
        restored.observe(&ok(T0 + 3 * S, "h4", "alice", "10.0.0.1"));
        let after = restored.take_alerts();
        let key = |v: &[FleetAlert]| rules(v, FleetRule::LateralMovementUser)[0].key.clone();
        assert_eq!(key(&before), key(&after));
        assert!(matches!(
            Engine::restore(c, b"\x07garbage"),
            Err(RestoreError::Version { .. } | RestoreError::Decode(_))
        ));
    }

    /// What a version 3 collector learnt survives the upgrade: a host the user used stays
    /// known, a host they never used is still news, and the learning period does not start
    /// again (a fresh engine would learn in silence for `first-login-learning`).
    #[test]
    fn a_version_3_state_is_upgraded_with_what_it_learnt() {
        let c = FleetConfig {
            first_login_learning: Duration::from_secs(7 * 86_400),
            ..FleetConfig::default()
        };
        let mut engine = Engine::new(c.clone());
        for e in history(&["alice"]) {
            engine.observe(&e);
        }
        // h9 is a host the fleet has known as long (bob's).
        engine.observe(&ok(T0 - 30 * 86_400 * S, "h9", "bob", "192.0.2.2"));
        engine.take_alerts();
        let s = engine.state.clone();
        let v3 = StateV3 {
            version: 3,
            first_us: s.first_us,
            resumed_us: s.resumed_us,
            agents: s.agents,
            lateral_user: s.lateral_user,
            lateral_source: s.lateral_source,
            failures_source: s.failures_source,
            failures_user: s.failures_user,
            known: s.known,
            known_sources: s.known_sources,
            user_hosts: s
                .user_hosts
                .into_iter()
                .map(|(u, h)| (u, h.hosts))
                .collect(),
            source_users: s.source_users,
            held: s.held,
        };
        let bytes = postcard::to_allocvec(&v3).unwrap();
        let mut restored = Engine::restore(c.clone(), &bytes).unwrap();
        assert_eq!(restored.state.version, STATE_VERSION);
        restored.observe(&ok(T0, "h0", "alice", "192.0.2.1"));
        restored.tick(T0 + 20 * MIN);
        assert!(restored.take_alerts().is_empty(), "h0 is alice's host");
        restored.observe(&ok(T0 + 30 * MIN, "h9", "alice", "192.0.2.1"));
        restored.tick(T0 + 60 * MIN);
        let alerts = restored.take_alerts();
        assert_eq!(rules(&alerts, FleetRule::FirstLogin).len(), 1, "{alerts:?}");
        // Another version is refused with its number.
        let mut v5 = bytes.clone();
        v5[0] = 5;
        assert!(matches!(
            Engine::restore(c, &v5),
            Err(RestoreError::Version { found: 5 })
        ));
    }

    #[test]
    fn config_bounds_are_checked() {
        assert!(FleetConfig::default().problems().is_empty());
        let c = FleetConfig {
            lateral_hosts: 1,
            failure_hosts: MAX_HOSTS_PER_KEY + 1,
            silent_after: Duration::ZERO,
            max_tracked: 0,
            ..FleetConfig::default()
        };
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "[fleet] lateral-hosts",
                "[fleet] failure-hosts",
                "[fleet] silent-after",
                "[fleet] max-tracked"
            ]
        );
    }
}
