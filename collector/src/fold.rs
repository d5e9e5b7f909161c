//! One incident, one alert: the same edge alert raised by several hosts folded into the first.
//!
//! An agent judges its own host. When a user logs in from a network none of the agents knew
//! for them, each host the user then reaches raises its own `first_seen_source`: one fact
//! ("user U now logs in from network N") told once per host. The collector, which sees every
//! host, lists it once: an edge alert of a [`FOLDED_RULES`] rule for the same user and the same
//! network (agent-core's [`same_net`]: the /16 of an IPv4 address, the /48 of an IPv6 one) that
//! another host already raised within `[fleet] fold-window` of event time (default
//! [`FOLD_WINDOW_US`]) is **folded** into that
//! first alert (the head): the head's listing carries the hosts and the number of alerts it
//! covers (`related.hosts`, `authtrail.folded`). A folded alert is only left out of the alert
//! listing: its event stays in its batch, queryable like any event.
//!
//! What is never folded, because it is another fact or a worse one:
//! - another network, another user, another rule, or the same network after the window (a new
//!   head, which later repeats fold into);
//! - an alert of a higher severity than the head's (it is listed, and becomes the head);
//! - a second alert from a host the head already covers (the agent raised it again, e.g. after
//!   losing its memory: listed, and it becomes the head).
//!
//! **A network the fleet knows is not new.** The fleet also remembers, per user and network,
//! the hosts a successful login came from ([`Fold::login`], the last two hosts and when, for
//! `[fleet] network-memory`, default [`NETWORK_MEMORY_US`]). A `first_seen_source` for a
//! network the same user logged in from on *another* host within that memory is a fact the
//! fleet already holds (their home network reached a host they had not used from home; a key
//! login there, which the edge rule does not report, came first): [`Verdict::Known`], not
//! listed, like a folded alert. This is the edge rule's own memory (it never raises a network
//! it saw for the user on its host) applied across hosts.
//!
//! **A sudo habit the fleet knows is not news either.** The fold remembers, per user, the last
//! two hosts they used sudo on ([`Fold::sudo`], for the same memory). A `first_sudo` (an
//! agent's "first sudo by this user on this host") of a user who used sudo on *another* host
//! within that memory is [`Verdict::Known`]: someone whose work is administering the fleet's
//! hosts reached one more, the edge rule's own habit applied across hosts. A first sudo by a
//! user the fleet never saw use sudo is listed.
//!
//! **A sudo is judged with the login it follows.** The alerts raised on one login are
//! remembered by (agent, `event.sequence`) ([`LOGIN_RULES`] cite the login last). A
//! `privilege_after_login` (which cites the login first) after a login whose only alerts were
//! [`Verdict::Known`] is known too: the login was not suspicious after all. After a login whose
//! only listed alert is a `first_seen_source`, it is **escalated** into that alert's incident:
//! [`Verdict::Folded`] at the follow-on's severity, the head's `message` extended with
//! "Then on HOST: ..." and the follow-ons in `authtrail.then` (one incident, told once, at its
//! worst). After a login that raised another rule's alert it is listed as it comes.
//!
//! Only `first_seen_source` is folded across hosts. `sudo_refused` and the account rules are
//! about one host each (a second host's refusal is a second step of an attack, not the same
//! fact), and `first_sudo` is only judged against the user's sudo elsewhere (above); the
//! failure rules already count per source and the fleet rules see across hosts.
//!
//! **Deterministic under replay.** Alerts are offered in batch order with their position
//! (batch id, row); an incident remembers the last position it absorbed, so replaying batches
//! it already covers changes nothing, and a head replayed is recognised by its key. The state
//! is saved with the alerts it produced (see `crate::alerts`), so a restart continues it.
//!
//! **Bounded.** At most [`MAX_FOLDS`] incidents (a full table drops the oldest eighth by event
//! time) and [`MAX_FOLD_HOSTS`] hosts named per incident (beyond that only counted).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use agent_core::detect::same_net;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long after the head (event time, either way) a repeat on another host is folded, by
/// default (`[fleet] fold-window`): 7 days. A user's new network shows on the hosts they use
/// over their working week, often days apart (a database host reached on Tuesday, the CI host
/// on Friday); a week later the network is listed again, once. The edge rule itself never
/// raises a known network twice on one host; the fold applies the same memory across hosts,
/// for a week.
pub const FOLD_WINDOW_US: i64 = 7 * 24 * 3600 * 1_000_000;
/// Incidents held at most.
pub const MAX_FOLDS: usize = 10_000;
/// Hosts named per incident at most (more are counted, not named).
pub const MAX_FOLD_HOSTS: usize = 64;
/// How long the fleet remembers a user's network from a successful login, by default
/// (`[fleet] network-memory`): 30 days of event time. People work from home, the office and
/// the odd café month after month; a network a user has not logged in from anywhere in the
/// fleet for a month is news again.
pub const NETWORK_MEMORY_US: i64 = 30 * 24 * 3600 * 1_000_000;
/// (user, network) pairs remembered at most (when full the oldest eighth, by last login, is
/// forgotten: those networks are new again).
pub const MAX_NETWORKS: usize = 20_000;
/// Users whose sudo hosts are remembered at most (when full the oldest eighth, by last sudo, is
/// forgotten: their next first sudo is listed again).
pub const MAX_SUDO_USERS: usize = 20_000;
/// A remembered login's time is moved forward only when it gains this much (event time): the
/// memory is for weeks, and a state that changes on every login would be saved with every
/// batch.
const NETWORK_REFRESH_US: i64 = 3600 * 1_000_000;
/// Follow-on alerts named per incident at most (more are only escalated into it).
pub const MAX_FOLLOW_ONS: usize = 16;
/// Characters of a message an incident keeps.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Logins whose edge alerts are remembered for their follow-ons (see [`LOGIN_RULES`]).
pub const MAX_LOGIN_MARKS: usize = 4_096;
/// Edge rules raised on a login, citing it last.
const LOGIN_RULES: &[&str] = &[
    "success_after_failures",
    "first_seen_source",
    "root_login",
    "off_hours_login",
    "new_account_login",
];
/// Edge rules that follow a login which alerted, citing it first: judged with that login.
const FOLLOW_ON_RULES: &[&str] = &["privilege_after_login"];
/// The edge rules whose repeats across hosts are one incident.
pub const FOLDED_RULES: &[&str] = &["first_seen_source"];
/// The saved state's version.
const STATE_VERSION: u32 = 1;

/// An edge alert as the fold sees it.
#[derive(Debug, Clone, Copy)]
pub struct EdgeAlert<'a> {
    /// The alert's key in the `alerts` table (unique, stable under replay).
    pub key: &'a str,
    /// Where it was read: (batch, row); increasing in the order alerts are offered.
    pub pos: (i64, i64),
    /// `rule.id`.
    pub rule: &'a str,
    /// `user.name`.
    pub user: Option<&'a str>,
    /// `source.ip`.
    pub source: Option<IpAddr>,
    /// The agent (host) that raised it.
    pub agent: &'a str,
    /// Its host name, for the listing (the agent id when none).
    pub hostname: Option<&'a str>,
    /// `@timestamp`, µs.
    pub time_us: i64,
    /// `event.severity`.
    pub severity: i64,
    /// `authtrail.evidence`: the `event.sequence` of the events it cites, in its order.
    pub evidence: &'a [u64],
    /// `message`.
    pub message: Option<&'a str>,
}

/// What to do with an offered alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// List it. `overlay` (when it covers folded alerts) is merged into its document.
    Head {
        /// `related.hosts` and `authtrail.folded` of the alerts it covers.
        overlay: Option<Value>,
    },
    /// Do not list it: it is part of the alert `into`, whose document takes `overlay` and
    /// which is now listed at `severity`.
    Folded {
        /// The head's key.
        into: String,
        /// The head's new `related.hosts` and `authtrail.folded` (and, escalated,
        /// `message`, `event.severity`, `authtrail.then`).
        overlay: Value,
        /// The head's severity, raised by an escalated follow-on.
        severity: i64,
    },
    /// Do not list it: the fleet saw this user log in from this network on another host within
    /// the network memory (see the module docs).
    Known,
}

/// The last two distinct hosts (agents) a user logged in from one network, newest first, with
/// the login's event time (µs).
type Seen = Vec<(String, i64)>;

/// What became of the edge alerts raised on one login.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct LoginMark {
    /// One was [`Verdict::Known`].
    known: bool,
    /// One was listed or folded into a listed alert.
    told: bool,
    /// One of another rule than `first_seen_source` was listed.
    other: bool,
    /// The listed `first_seen_source` alert (incident head) one was, or was folded into.
    #[serde(default)]
    head: Option<String>,
    /// The login's time (µs), for dropping the oldest.
    time_us: i64,
}

/// One fact on several hosts: the head alert and what it covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Incident {
    head: String,
    source: IpAddr,
    time_us: i64,
    severity: i64,
    /// (agent, host name) of the head's host first, then each host folded in.
    hosts: Vec<(String, String)>,
    /// Alerts covered, the head included.
    alerts: u64,
    /// The last position absorbed.
    last: (i64, i64),
    /// The latest event time covered.
    last_us: i64,
    /// The head's `message`.
    #[serde(default)]
    message: String,
    /// Follow-on alerts escalated into it (a sudo after one of its logins), at most
    /// [`MAX_FOLLOW_ONS`] named.
    #[serde(default)]
    then: Vec<FollowOn>,
    /// The highest severity of the follow-ons, named or not.
    #[serde(default)]
    then_severity: i64,
}

/// A follow-on alert (see [`FOLLOW_ON_RULES`]) escalated into an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct FollowOn {
    rule: String,
    severity: i64,
    host: String,
    message: String,
    time_us: i64,
}

impl Incident {
    /// The severity it is listed at: the head's, or a follow-on's when higher.
    fn listed_severity(&self) -> i64 {
        self.severity.max(self.then_severity)
    }

    /// Something to add to the head's document: it covers more than itself.
    fn has_overlay(&self) -> bool {
        self.alerts > 1 || !self.then.is_empty()
    }

    fn overlay(&self) -> Value {
        let mut o = json!({
            "related": { "hosts": self.hosts.iter().map(|h| h.1.as_str()).collect::<Vec<_>>() },
            "authtrail": { "folded": {
                "alerts": self.alerts,
                "hosts": self.hosts.iter().map(|h| h.1.as_str()).collect::<Vec<_>>(),
                "agents": self.hosts.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
                "last": crate::report::time(self.last_us),
            } },
        });
        if !self.then.is_empty() {
            let mut message = self.message.clone();
            for f in &self.then {
                let _ = write!(message, " Then on {}: {}", f.host, f.message);
            }
            o["message"] = json!(message);
            o["event"] = json!({ "severity": self.listed_severity() });
            o["authtrail"]["then"] = self
                .then
                .iter()
                .map(|f| {
                    json!({
                        "rule": f.rule,
                        "severity": f.severity,
                        "host": f.host,
                        "message": f.message,
                        "time": crate::report::time(f.time_us),
                    })
                })
                .collect();
        }
        o
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    incidents: BTreeMap<String, Vec<Incident>>,
    /// Absent in states saved before the network memory: nothing remembered.
    #[serde(default)]
    networks: BTreeMap<String, Seen>,
    #[serde(default)]
    logins: BTreeMap<String, LoginMark>,
    /// Absent in states saved before the sudo memory: nothing remembered.
    #[serde(default)]
    sudo: BTreeMap<String, Seen>,
}

/// The incidents of the last window, per (rule, user).
#[derive(Debug, Clone)]
pub struct Fold {
    /// The window, µs (0: nothing is folded).
    window_us: i64,
    /// `rule\0user` -> that user's incidents of that rule (one per network).
    incidents: BTreeMap<String, Vec<Incident>>,
    len: usize,
    /// The network memory, µs (0: remembers nothing).
    memory_us: i64,
    /// `user\0network` -> the hosts that user logged in on from it ([`Fold::login`]).
    networks: BTreeMap<String, Seen>,
    /// `agent\0sequence` of a login -> what became of its alerts, for their follow-ons.
    logins: BTreeMap<String, LoginMark>,
    /// user -> the hosts that user used sudo on ([`Fold::sudo`]).
    sudo: BTreeMap<String, Seen>,
    /// Changed since [`Fold::save`].
    dirty: bool,
}

/// Notes `agent` at `time_us` under `key` in `table` (the last two distinct hosts, newest
/// first; a host's time moves only when it gains [`NETWORK_REFRESH_US`]), which holds at most
/// `max` keys (the oldest eighth by newest time dropped beyond). True when it changed.
fn note(
    table: &mut BTreeMap<String, Seen>,
    key: String,
    agent: &str,
    time_us: i64,
    max: usize,
) -> bool {
    let seen = table.entry(key).or_default();
    match seen.iter().position(|(a, _)| a == agent) {
        Some(i) => {
            if time_us < seen[i].1 + NETWORK_REFRESH_US {
                return false;
            }
            seen[i].1 = time_us;
        }
        None => seen.push((agent.to_owned(), time_us)),
    }
    seen.sort_by_key(|s| std::cmp::Reverse(s.1));
    seen.truncate(2);
    if table.len() > max {
        let mut times: Vec<i64> = table.values().map(|s| s[0].1).collect();
        times.sort_unstable();
        let cut = times[table.len() / 8];
        table.retain(|_, s| s[0].1 > cut);
    }
    true
}

/// `user\0network`: the network as the edge rule's [`same_net`] cuts it (/16, /48).
fn network_key(user: &str, ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{user}\0{}.{}", o[0], o[1])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{user}\0{:x}:{:x}:{:x}", s[0], s[1], s[2])
        }
    }
}

impl Fold {
    /// An empty fold over `window_us` of event time (0: nothing is folded), remembering users'
    /// networks for `memory_us` (0: nothing is remembered).
    pub fn new(window_us: i64, memory_us: i64) -> Fold {
        Fold {
            window_us,
            incidents: BTreeMap::new(),
            len: 0,
            memory_us,
            networks: BTreeMap::new(),
            logins: BTreeMap::new(),
            sudo: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Records a successful login of `user` from `source` on `agent` at `time_us` (event time),
    /// in the order the collector reads them.
    pub fn login(&mut self, user: &str, source: IpAddr, agent: &str, time_us: i64) {
        if self.memory_us <= 0 {
            return;
        }
        self.dirty |= note(
            &mut self.networks,
            network_key(user, source),
            agent,
            time_us,
            MAX_NETWORKS,
        );
    }

    /// Records a successful sudo by `user` on `agent` at `time_us` (event time), in the order
    /// the collector reads them.
    pub fn sudo(&mut self, user: &str, agent: &str, time_us: i64) {
        if self.memory_us <= 0 {
            return;
        }
        self.dirty |= note(
            &mut self.sudo,
            user.to_owned(),
            agent,
            time_us,
            MAX_SUDO_USERS,
        );
    }

    /// True when `user` used sudo on a host other than `agent` within the memory before (or
    /// at) `time_us`.
    fn sudo_elsewhere(&self, user: &str, agent: &str, time_us: i64) -> bool {
        self.sudo.get(user).is_some_and(|seen| {
            seen.iter()
                .any(|(a, t)| a != agent && *t <= time_us && time_us - *t <= self.memory_us)
        })
    }

    /// Pairs (user, network) remembered.
    pub fn networks(&self) -> usize {
        self.networks.len()
    }

    /// True when `user` logged in from `source`'s network on a host other than `agent` within
    /// the memory before (or at) `time_us`.
    fn known_elsewhere(&self, user: &str, source: IpAddr, agent: &str, time_us: i64) -> bool {
        self.networks
            .get(&network_key(user, source))
            .is_some_and(|seen| {
                seen.iter()
                    .any(|(a, t)| a != agent && *t <= time_us && time_us - *t <= self.memory_us)
            })
    }

    /// Incidents held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offers an edge alert, in the order the collector reads them.
    pub fn offer(&mut self, a: &EdgeAlert<'_>) -> Verdict {
        if a.rule == "first_sudo"
            && a.user
                .is_some_and(|u| self.sudo_elsewhere(u, a.agent, a.time_us))
        {
            return Verdict::Known;
        }
        let login = |seq: Option<&u64>| seq.map(|s| format!("{}\0{s}", a.agent));
        if FOLLOW_ON_RULES.contains(&a.rule) {
            let mark = login(a.evidence.first()).and_then(|k| self.logins.get(&k));
            // A successful sudo after a login whose only alerts the fleet found known is an
            // ordinary sudo: the login was not suspicious after all.
            if mark.is_some_and(|m| m.known && !m.told) {
                return Verdict::Known;
            }
            // After a login whose only listed alert is a new network: one incident, told once,
            // at the follow-on's severity.
            if let Some(head) = mark.filter(|m| !m.other).and_then(|m| m.head.clone()) {
                return self.escalate(&head, a);
            }
            return Verdict::Head { overlay: None };
        }
        let verdict = self.judge(a);
        if LOGIN_RULES.contains(&a.rule)
            && let Some(key) = login(a.evidence.last())
        {
            let mark = self.logins.entry(key).or_default();
            let before = mark.clone();
            mark.time_us = a.time_us;
            match &verdict {
                Verdict::Known => mark.known = true,
                v => {
                    mark.told = true;
                    if a.rule != "first_seen_source" {
                        mark.other = true;
                    } else if let Verdict::Folded { into, .. } = v {
                        mark.head = Some(into.clone());
                    } else if self.window_us > 0 {
                        mark.head = Some(a.key.to_owned());
                    }
                }
            }
            self.dirty |= *mark != before;
            if self.logins.len() > MAX_LOGIN_MARKS {
                let mut times: Vec<i64> = self.logins.values().map(|m| m.time_us).collect();
                times.sort_unstable();
                let cut = times[self.logins.len() / 8];
                self.logins.retain(|_, m| m.time_us > cut);
            }
        }
        verdict
    }

    /// Escalates follow-on `a` into the incident headed by `head` (listed as it comes when the
    /// incident is gone).
    fn escalate(&mut self, head: &str, a: &EdgeAlert<'_>) -> Verdict {
        let Some(inc) = self
            .incidents
            .values_mut()
            .flatten()
            .find(|i| i.head == head)
        else {
            return Verdict::Head { overlay: None };
        };
        if a.pos > inc.last {
            inc.last = a.pos;
            if inc.then.len() < MAX_FOLLOW_ONS {
                inc.then.push(FollowOn {
                    rule: a.rule.to_owned(),
                    severity: a.severity,
                    host: a.hostname.unwrap_or(a.agent).to_owned(),
                    message: a
                        .message
                        .unwrap_or("")
                        .chars()
                        .take(MAX_MESSAGE_CHARS)
                        .collect(),
                    time_us: a.time_us,
                });
            }
            inc.then_severity = inc.then_severity.max(a.severity);
            self.dirty = true;
        }
        Verdict::Folded {
            into: inc.head.clone(),
            overlay: inc.overlay(),
            severity: inc.listed_severity(),
        }
    }

    fn judge(&mut self, a: &EdgeAlert<'_>) -> Verdict {
        let (Some(user), Some(source)) = (a.user, a.source) else {
            return Verdict::Head { overlay: None };
        };
        if !FOLDED_RULES.contains(&a.rule) {
            return Verdict::Head { overlay: None };
        }
        if self.known_elsewhere(user, source, a.agent, a.time_us) {
            return Verdict::Known;
        }
        if self.window_us <= 0 {
            return Verdict::Head { overlay: None };
        }
        let id = format!("{}\0{user}", a.rule);
        let list = self.incidents.entry(id).or_default();
        if let Some(inc) = list.iter().find(|i| i.head == a.key) {
            // The head replayed.
            return Verdict::Head {
                overlay: inc.has_overlay().then(|| inc.overlay()),
            };
        }
        let host = a.hostname.unwrap_or(a.agent);
        let same = list.iter().position(|i| {
            same_net(i.source, source) && (a.time_us - i.time_us).abs() <= self.window_us
        });
        if let Some(n) = same {
            let inc = &mut list[n];
            if a.pos <= inc.last {
                // Replayed, already counted.
                return Verdict::Folded {
                    into: inc.head.clone(),
                    overlay: inc.overlay(),
                    severity: inc.listed_severity(),
                };
            }
            let known = inc.hosts.iter().any(|h| h.0 == a.agent);
            if a.severity <= inc.severity && !known {
                inc.alerts += 1;
                inc.last = a.pos;
                inc.last_us = inc.last_us.max(a.time_us);
                if inc.hosts.len() < MAX_FOLD_HOSTS {
                    inc.hosts.push((a.agent.to_owned(), host.to_owned()));
                }
                self.dirty = true;
                return Verdict::Folded {
                    into: inc.head.clone(),
                    overlay: inc.overlay(),
                    severity: inc.listed_severity(),
                };
            }
        }
        // A new head: it replaces the incidents of its network (an older one past the window,
        // or one it may not fold into).
        let before = list.len();
        list.retain(|i| !same_net(i.source, source));
        self.len -= before - list.len();
        list.push(Incident {
            head: a.key.to_owned(),
            source,
            time_us: a.time_us,
            severity: a.severity,
            hosts: vec![(a.agent.to_owned(), host.to_owned())],
            alerts: 1,
            last: a.pos,
            last_us: a.time_us,
            message: a
                .message
                .unwrap_or("")
                .chars()
                .take(MAX_MESSAGE_CHARS)
                .collect(),
            then: Vec::new(),
            then_severity: 0,
        });
        self.len += 1;
        self.dirty = true;
        if self.len > MAX_FOLDS {
            self.evict();
        }
        Verdict::Head { overlay: None }
    }

    /// Drops the oldest eighth of the incidents (by head time, then key: the same under replay).
    fn evict(&mut self) {
        let mut times: Vec<(i64, &str)> = self
            .incidents
            .values()
            .flatten()
            .map(|i| (i.time_us, i.head.as_str()))
            .collect();
        times.sort_unstable();
        let cut = times[(self.len / 8).max(1) - 1];
        let cut = (cut.0, cut.1.to_owned());
        for list in self.incidents.values_mut() {
            list.retain(|i| (i.time_us, i.head.as_str()) > (cut.0, cut.1.as_str()));
        }
        self.incidents.retain(|_, l| !l.is_empty());
        self.len = self.incidents.values().map(Vec::len).sum();
    }

    /// True when changed since the last [`Fold::save`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state as bytes (versioned JSON); clears the changed mark.
    pub fn save(&mut self) -> Vec<u8> {
        self.dirty = false;
        serde_json::to_vec(&Saved {
            version: STATE_VERSION,
            incidents: self.incidents.clone(),
            networks: self.networks.clone(),
            logins: self.logins.clone(),
            sudo: self.sudo.clone(),
        })
        .unwrap_or_default()
    }

    /// A fold from [`Fold::save`]'s bytes; `None` for another version or damaged bytes (the
    /// caller starts an empty fold: a repeat is then listed once more, nothing is lost).
    pub fn restore(bytes: &[u8], window_us: i64, memory_us: i64) -> Option<Fold> {
        let saved: Saved = serde_json::from_slice(bytes).ok()?;
        if saved.version != STATE_VERSION {
            return None;
        }
        let mut incidents = saved.incidents;
        incidents.retain(|_, l| !l.is_empty());
        let len = incidents.values().map(Vec::len).sum();
        let mut networks = saved.networks;
        networks.retain(|_, s| !s.is_empty());
        let mut fold = Fold {
            window_us,
            incidents,
            len,
            memory_us,
            networks,
            logins: saved.logins,
            sudo: saved
                .sudo
                .into_iter()
                .filter(|(_, s)| !s.is_empty())
                .collect(),
            dirty: false,
        };
        if fold.len > MAX_FOLDS {
            fold.evict();
        }
        Some(fold)
    }
}

/// Merges `overlay` into `doc` (objects key by key, anything else replaced).
pub fn merge(doc: &mut Value, overlay: &Value) {
    match (doc, overlay) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, v) in o {
                merge(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (d, o) => *d = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600 * 1_000_000;

    struct A {
        key: String,
        pos: (i64, i64),
        rule: &'static str,
        user: &'static str,
        ip: &'static str,
        agent: &'static str,
        t: i64,
        sev: i64,
        evidence: Vec<u64>,
    }

    fn a(n: i64, agent: &'static str, ip: &'static str, t: i64) -> A {
        A {
            key: format!("edge:{n}:0"),
            pos: (n, 0),
            rule: "first_seen_source",
            user: "alice",
            ip,
            agent,
            t,
            sev: 21,
            evidence: vec![n as u64],
        }
    }

    fn offer(f: &mut Fold, x: &A) -> Verdict {
        f.offer(&EdgeAlert {
            key: &x.key,
            pos: x.pos,
            rule: x.rule,
            user: Some(x.user),
            source: x.ip.parse().ok(),
            agent: x.agent,
            hostname: Some(x.agent),
            time_us: x.t,
            severity: x.sev,
            evidence: &x.evidence,
            message: Some("a message"),
        })
    }

    fn head(v: &Verdict) -> bool {
        matches!(v, Verdict::Head { .. })
    }

    #[test]
    fn the_same_new_network_on_another_host_within_the_window_is_folded() {
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert_eq!(
            offer(&mut f, &a(1, "web1", "198.51.7.9", 0)),
            Verdict::Head { overlay: None }
        );
        // Another address of the same /16, on another host, 23 h later: folded.
        let v = offer(&mut f, &a(2, "web2", "198.51.200.1", 23 * H));
        let Verdict::Folded { into, overlay, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(into, "edge:1:0");
        assert_eq!(overlay["related"]["hosts"], json!(["web1", "web2"]));
        assert_eq!(overlay["authtrail"]["folded"]["alerts"], 2);
        // Exactly at the window's edge: still folded; a third host is named too.
        let v = offer(&mut f, &a(3, "web3", "198.51.1.1", FOLD_WINDOW_US));
        let Verdict::Folded { overlay, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(overlay["authtrail"]["folded"]["alerts"], 3);
        assert_eq!(
            overlay["authtrail"]["folded"]["hosts"],
            json!(["web1", "web2", "web3"])
        );
        // IPv6: the same /48 folds, another /48 does not.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "2001:db8:1:1::1", 0))));
        assert!(!head(&offer(&mut f, &a(2, "web2", "2001:db8:1:ff::2", H))));
        assert!(head(&offer(&mut f, &a(3, "web3", "2001:db8:2::1", H))));
    }

    #[test]
    fn another_fact_or_a_worse_one_is_never_folded() {
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "198.51.7.9", 0))));
        // Another /16: a new fact.
        assert!(head(&offer(&mut f, &a(2, "web2", "198.52.7.9", H))));
        // Past the window: listed again (and it is the new head).
        assert!(head(&offer(
            &mut f,
            &a(3, "web3", "198.51.7.9", FOLD_WINDOW_US + 1)
        )));
        // Another user.
        let mut bob = a(4, "web4", "198.51.7.9", FOLD_WINDOW_US + 2);
        bob.user = "bob";
        assert!(head(&offer(&mut f, &bob)));
        // A higher severity than the head's: listed.
        let mut worse = a(5, "web5", "198.51.7.9", FOLD_WINDOW_US + 3);
        worse.sev = 47;
        assert!(head(&offer(&mut f, &worse)));
        // Another rule is not folded at all.
        let mut sudo = a(6, "web6", "198.51.7.9", FOLD_WINDOW_US + 4);
        sudo.rule = "first_sudo";
        assert!(head(&offer(&mut f, &sudo)));
        let mut sudo2 = a(7, "web7", "198.51.7.9", FOLD_WINDOW_US + 5);
        sudo2.rule = "first_sudo";
        assert!(head(&offer(&mut f, &sudo2)));
        // The same host again: listed (its agent raised it anew).
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "198.51.7.9", 0))));
        assert!(head(&offer(&mut f, &a(2, "web1", "198.51.7.10", H))));
        // A window of 0 folds nothing.
        let mut f = Fold::new(0, NETWORK_MEMORY_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "198.51.7.9", 0))));
        assert!(head(&offer(&mut f, &a(2, "web2", "198.51.7.9", 0))));
        // A lower severity folds into a higher head.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        let mut high = a(1, "web1", "198.51.7.9", 0);
        high.sev = 47;
        assert!(head(&offer(&mut f, &high)));
        assert!(!head(&offer(&mut f, &a(2, "web2", "198.51.7.9", H))));
    }

    #[test]
    fn a_replay_changes_nothing_and_a_restore_continues() {
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        let xs = [
            a(1, "web1", "198.51.7.9", 0),
            a(2, "web2", "198.51.7.9", H),
            a(3, "web3", "198.51.7.9", 2 * H),
        ];
        let first: Vec<Verdict> = xs.iter().map(|x| offer(&mut f, x)).collect();
        let saved = f.save();
        assert!(!f.is_dirty());
        let mut g = Fold::restore(&saved, FOLD_WINDOW_US, NETWORK_MEMORY_US).unwrap();
        let again: Vec<Verdict> = xs.iter().map(|x| offer(&mut g, x)).collect();
        assert_eq!(
            again[0],
            Verdict::Head {
                overlay: Some(f.incidents.values().next().unwrap()[0].overlay())
            }
        );
        // The same verdicts; each replayed repeat carries the incident as saved (3 alerts),
        // nothing counted twice.
        assert_eq!(first[2], again[1]);
        assert_eq!(first[2], again[2]);
        assert!(!g.is_dirty());
        let v = offer(&mut g, &a(4, "web4", "198.51.7.9", 3 * H));
        let Verdict::Folded { overlay, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(overlay["authtrail"]["folded"]["alerts"], 4);
        assert!(
            Fold::restore(
                b"{\"version\":99,\"incidents\":{}}",
                FOLD_WINDOW_US,
                NETWORK_MEMORY_US
            )
            .is_none()
        );
        assert!(Fold::restore(b"junk", FOLD_WINDOW_US, NETWORK_MEMORY_US).is_none());
    }

    #[test]
    fn a_flood_of_new_networks_keeps_the_table_bounded() {
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        let users: Vec<String> = (0..MAX_FOLDS + 500).map(|i| format!("u{i}")).collect();
        for (i, u) in users.iter().enumerate() {
            let key = format!("edge:{i}:0");
            f.offer(&EdgeAlert {
                key: &key,
                pos: (i as i64, 0),
                rule: "first_seen_source",
                user: Some(u),
                source: Some("198.51.7.9".parse().unwrap()),
                agent: "web1",
                hostname: None,
                time_us: i as i64,
                severity: 21,
                evidence: &[],
                message: None,
            });
            assert!(f.len() <= MAX_FOLDS, "{}", f.len());
        }
        assert!(f.len() > MAX_FOLDS / 2);
        // The newest is still held, the oldest went first.
        assert!(
            f.incidents
                .contains_key(&format!("first_seen_source\0u{}", MAX_FOLDS + 499))
        );
        assert!(!f.incidents.contains_key("first_seen_source\0u0"));
        // Hosts named per incident are bounded too; the count goes on.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        let agents: Vec<String> = (0..MAX_FOLD_HOSTS + 10).map(|i| format!("h{i}")).collect();
        let mut last = None;
        for (i, ag) in agents.iter().enumerate() {
            let key = format!("edge:{i}:0");
            last = Some(f.offer(&EdgeAlert {
                key: &key,
                pos: (i as i64, 0),
                rule: "first_seen_source",
                user: Some("alice"),
                source: Some("198.51.7.9".parse().unwrap()),
                agent: ag,
                hostname: None,
                time_us: 0,
                severity: 21,
                evidence: &[],
                message: None,
            }));
        }
        let Some(Verdict::Folded { overlay, .. }) = last else {
            panic!("{last:?}")
        };
        assert_eq!(
            overlay["authtrail"]["folded"]["hosts"]
                .as_array()
                .unwrap()
                .len(),
            MAX_FOLD_HOSTS
        );
        assert_eq!(
            overlay["authtrail"]["folded"]["alerts"],
            (MAX_FOLD_HOSTS + 10) as u64
        );
    }

    /// A first sudo on one host by a user the fleet saw use sudo on another within the memory
    /// is known (an admin reaching one more host); otherwise it is listed.
    #[test]
    fn a_first_sudo_by_a_user_who_uses_sudo_on_another_host_is_known() {
        let first_sudo = |n: i64, user: &'static str, agent: &'static str, t: i64| A {
            rule: "first_sudo",
            user,
            ip: "",
            ..a(n, agent, "", t)
        };
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        // Nobody's sudo known yet: listed.
        assert!(head(&offer(&mut f, &first_sudo(1, "alice", "web1", 0))));
        // alice's sudo on web1 (the one just alerted): her first on web2 a day later is known.
        f.sudo("alice", "web1", 0);
        assert_eq!(
            offer(&mut f, &first_sudo(2, "alice", "web2", 24 * H)),
            Verdict::Known
        );
        // Only another host's sudo counts: web1's own agent alerting again is listed.
        assert!(head(&offer(
            &mut f,
            &first_sudo(3, "alice", "web1", 25 * H)
        )));
        // Another user: listed. Another rule (a refusal on web2): listed.
        assert!(head(&offer(&mut f, &first_sudo(4, "bob", "web2", 25 * H))));
        let refused = A {
            rule: "sudo_refused",
            ..first_sudo(5, "alice", "web2", 25 * H)
        };
        assert!(head(&offer(&mut f, &refused)));
        // A sudo after the alert's time does not make it known; past the memory: listed,
        // exactly at its edge: known.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        f.sudo("alice", "web1", 2 * H);
        assert!(head(&offer(&mut f, &first_sudo(1, "alice", "web2", H))));
        let edge = 2 * H + NETWORK_MEMORY_US;
        assert_eq!(
            offer(&mut f, &first_sudo(2, "alice", "web2", edge)),
            Verdict::Known
        );
        assert!(head(&offer(
            &mut f,
            &first_sudo(3, "alice", "web3", edge + 1)
        )));
        // Saved and restored with the fold.
        let mut g = Fold::restore(&f.save(), FOLD_WINDOW_US, NETWORK_MEMORY_US).unwrap();
        assert_eq!(
            offer(&mut g, &first_sudo(4, "alice", "web4", edge)),
            Verdict::Known
        );
        // A memory of 0 remembers nothing.
        let mut f = Fold::new(FOLD_WINDOW_US, 0);
        f.sudo("alice", "web1", 0);
        assert!(head(&offer(&mut f, &first_sudo(1, "alice", "web2", H))));
        // Bounded: a flood of users keeps at most MAX_SUDO_USERS, the newest kept.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        for i in 0..MAX_SUDO_USERS + 100 {
            f.sudo(&format!("u{i}"), "web1", i as i64);
            assert!(f.sudo.len() <= MAX_SUDO_USERS);
        }
        let newest = format!("u{}", MAX_SUDO_USERS + 99);
        assert!(f.sudo_elsewhere(&newest, "web2", H));
        assert!(!f.sudo_elsewhere("u0", "web2", H));
    }

    #[test]
    fn a_network_the_user_logged_in_from_on_another_host_is_known() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        // alice logs in on web1 from home (a key login: web1's agent raised nothing).
        f.login("alice", ip("198.51.7.9"), "web1", 0);
        assert_eq!(f.networks(), 1);
        // Her first password login from that /16 on web2, a day later: the fleet knows it.
        assert_eq!(
            offer(&mut f, &a(1, "web2", "198.51.200.1", 24 * H)),
            Verdict::Known
        );
        // Only another host's login counts: web1's own agent alerting (its memory lost) is
        // listed.
        assert!(head(&offer(&mut f, &a(2, "web1", "198.51.7.10", 25 * H))));
        // Another user, another network: new.
        let mut bob = a(3, "web2", "198.51.7.9", 25 * H);
        bob.user = "bob";
        assert!(head(&offer(&mut f, &bob)));
        assert!(head(&offer(&mut f, &a(4, "web3", "203.0.113.1", 25 * H))));
        // A login after the alert's time does not make it known.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        f.login("alice", ip("198.51.7.9"), "web1", 2 * H);
        assert!(head(&offer(&mut f, &a(1, "web2", "198.51.7.9", H))));
        // Past the memory: new again; exactly at its edge: known.
        let mut f = Fold::new(0, NETWORK_MEMORY_US);
        f.login("alice", ip("2001:db8:1:1::1"), "web1", 0);
        assert_eq!(
            offer(&mut f, &a(1, "web2", "2001:db8:1:ff::2", NETWORK_MEMORY_US)),
            Verdict::Known
        );
        assert!(head(&offer(
            &mut f,
            &a(2, "web3", "2001:db8:1::3", NETWORK_MEMORY_US + 1)
        )));
        // A memory of 0 remembers nothing.
        let mut f = Fold::new(FOLD_WINDOW_US, 0);
        f.login("alice", ip("198.51.7.9"), "web1", 0);
        assert_eq!(f.networks(), 0);
        assert!(head(&offer(&mut f, &a(1, "web2", "198.51.7.9", H))));
        // Bounded: a flood of users' networks keeps at most MAX_NETWORKS, the newest kept.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        for i in 0..MAX_NETWORKS + 100 {
            f.login(&format!("u{i}"), ip("198.51.7.9"), "web1", i as i64);
            assert!(f.networks() <= MAX_NETWORKS);
        }
        let mut last = a(1, "web2", "198.51.7.9", H);
        last.user = "u20099";
        assert_eq!(offer(&mut f, &last), Verdict::Known);
        // Saved and restored with the fold.
        let mut g = Fold::restore(&f.save(), FOLD_WINDOW_US, NETWORK_MEMORY_US).unwrap();
        assert_eq!(g.networks(), f.networks());
        last.key = "edge:2:0".to_owned();
        last.pos = (2, 0);
        assert_eq!(offer(&mut g, &last), Verdict::Known);
    }

    /// `rule` raised on the login with sequence `login` (and `then` for a follow-on).
    fn on_login(n: i64, rule: &'static str, agent: &'static str, login: u64, then: u64) -> A {
        let mut x = a(n, agent, "198.51.7.9", n * H);
        x.rule = rule;
        x.evidence = if rule == "privilege_after_login" {
            vec![login, then]
        } else {
            vec![login]
        };
        if rule == "privilege_after_login" {
            x.sev = 47;
        }
        x
    }

    #[test]
    fn a_sudo_after_a_login_is_judged_with_that_login() {
        // After a login the fleet found known: an ordinary sudo.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        f.login("alice", "198.51.7.9".parse().unwrap(), "web1", 0);
        assert_eq!(
            offer(&mut f, &on_login(1, "first_seen_source", "web2", 10, 0)),
            Verdict::Known
        );
        assert_eq!(
            offer(
                &mut f,
                &on_login(2, "privilege_after_login", "web2", 10, 11)
            ),
            Verdict::Known
        );
        // The same sequence number on another host is another login: listed.
        assert!(head(&offer(
            &mut f,
            &on_login(3, "privilege_after_login", "web3", 10, 11)
        )));

        // After a login whose only alert is a new network: escalated into that alert.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert!(head(&offer(
            &mut f,
            &on_login(1, "first_seen_source", "web1", 10, 0)
        )));
        let v = offer(
            &mut f,
            &on_login(2, "privilege_after_login", "web1", 10, 12),
        );
        let Verdict::Folded {
            into,
            overlay,
            severity,
        } = v
        else {
            panic!("{v:?}")
        };
        assert_eq!((into.as_str(), severity), ("edge:1:0", 47));
        assert_eq!(overlay["event"]["severity"], 47);
        assert_eq!(overlay["message"], "a message Then on web1: a message");
        assert_eq!(
            overlay["authtrail"]["then"][0]["rule"],
            "privilege_after_login"
        );
        // A repeat on another host folds into the escalated alert, which keeps its severity;
        // a sudo after that login escalates the same alert.
        let v = offer(&mut f, &on_login(3, "first_seen_source", "web2", 20, 0));
        assert!(matches!(v, Verdict::Folded { severity: 47, .. }), "{v:?}");
        let v = offer(
            &mut f,
            &on_login(4, "privilege_after_login", "web2", 20, 21),
        );
        let Verdict::Folded { into, overlay, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(into, "edge:1:0");
        assert_eq!(overlay["authtrail"]["then"].as_array().unwrap().len(), 2);
        // Replayed: nothing added twice.
        let v = offer(
            &mut f,
            &on_login(4, "privilege_after_login", "web2", 20, 21),
        );
        let Verdict::Folded { overlay, .. } = v else {
            panic!("{v:?}")
        };
        assert_eq!(overlay["authtrail"]["then"].as_array().unwrap().len(), 2);
        // The head replayed carries the escalation.
        let Verdict::Head { overlay: Some(o) } =
            offer(&mut f, &on_login(1, "first_seen_source", "web1", 10, 0))
        else {
            panic!()
        };
        assert_eq!(o["event"]["severity"], 47);

        // After a login that also raised another rule's alert: listed, as it comes.
        let mut f = Fold::new(FOLD_WINDOW_US, NETWORK_MEMORY_US);
        assert!(head(&offer(
            &mut f,
            &on_login(1, "success_after_failures", "web1", 10, 0)
        )));
        assert!(head(&offer(
            &mut f,
            &on_login(2, "first_seen_source", "web1", 10, 0)
        )));
        assert!(head(&offer(
            &mut f,
            &on_login(3, "privilege_after_login", "web1", 10, 12)
        )));
        // After a login the fold knows nothing of: listed.
        assert!(head(&offer(
            &mut f,
            &on_login(4, "privilege_after_login", "web1", 99, 100)
        )));
        // With folding off there is no incident to escalate into: listed.
        let mut f = Fold::new(0, NETWORK_MEMORY_US);
        assert!(head(&offer(
            &mut f,
            &on_login(1, "first_seen_source", "web1", 10, 0)
        )));
        assert!(head(&offer(
            &mut f,
            &on_login(2, "privilege_after_login", "web1", 10, 12)
        )));
    }

    #[test]
    fn an_overlay_merges_into_the_document() {
        let mut doc = json!({"authtrail": {"count": 1}, "host": {"hostname": "web1"}});
        merge(
            &mut doc,
            &json!({"authtrail": {"folded": {"alerts": 2}}, "related": {"hosts": ["a"]}}),
        );
        assert_eq!(
            doc,
            json!({"authtrail": {"count": 1, "folded": {"alerts": 2}}, "host": {"hostname": "web1"}, "related": {"hosts": ["a"]}})
        );
    }
}
