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
//! Only `first_seen_source` is folded. `first_sudo`, `privilege_after_login` and the account
//! rules are about one host each (sudo on a second host is a second step of an attack, not the
//! same fact); the failure rules already count per source and the fleet rules see across hosts.
//!
//! **Deterministic under replay.** Alerts are offered in batch order with their position
//! (batch id, row); an incident remembers the last position it absorbed, so replaying batches
//! it already covers changes nothing, and a head replayed is recognised by its key. The state
//! is saved with the alerts it produced (see `crate::alerts`), so a restart continues it.
//!
//! **Bounded.** At most [`MAX_FOLDS`] incidents (a full table drops the oldest eighth by event
//! time) and [`MAX_FOLD_HOSTS`] hosts named per incident (beyond that only counted).

use std::collections::BTreeMap;
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
}

/// What to do with an offered alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// List it. `overlay` (when it covers folded alerts) is merged into its document.
    Head {
        /// `related.hosts` and `authtrail.folded` of the alerts it covers.
        overlay: Option<Value>,
    },
    /// Do not list it: it is part of the alert `into`, whose document takes `overlay`.
    Folded {
        /// The head's key.
        into: String,
        /// The head's new `related.hosts` and `authtrail.folded`.
        overlay: Value,
    },
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
}

impl Incident {
    fn overlay(&self) -> Value {
        json!({
            "related": { "hosts": self.hosts.iter().map(|h| h.1.as_str()).collect::<Vec<_>>() },
            "authtrail": { "folded": {
                "alerts": self.alerts,
                "hosts": self.hosts.iter().map(|h| h.1.as_str()).collect::<Vec<_>>(),
                "agents": self.hosts.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
                "last": crate::report::time(self.last_us),
            } },
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    incidents: BTreeMap<String, Vec<Incident>>,
}

/// The incidents of the last window, per (rule, user).
#[derive(Debug, Clone)]
pub struct Fold {
    /// The window, µs (0: nothing is folded).
    window_us: i64,
    /// `rule\0user` -> that user's incidents of that rule (one per network).
    incidents: BTreeMap<String, Vec<Incident>>,
    len: usize,
    /// Changed since [`Fold::save`].
    dirty: bool,
}

impl Fold {
    /// An empty fold over `window_us` of event time (0: nothing is folded).
    pub fn new(window_us: i64) -> Fold {
        Fold {
            window_us,
            incidents: BTreeMap::new(),
            len: 0,
            dirty: false,
        }
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
        let (Some(user), Some(source)) = (a.user, a.source) else {
            return Verdict::Head { overlay: None };
        };
        if !FOLDED_RULES.contains(&a.rule) || self.window_us <= 0 {
            return Verdict::Head { overlay: None };
        }
        let id = format!("{}\0{user}", a.rule);
        let list = self.incidents.entry(id).or_default();
        if let Some(inc) = list.iter().find(|i| i.head == a.key) {
            // The head replayed.
            return Verdict::Head {
                overlay: (inc.alerts > 1).then(|| inc.overlay()),
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
        })
        .unwrap_or_default()
    }

    /// A fold from [`Fold::save`]'s bytes; `None` for another version or damaged bytes (the
    /// caller starts an empty fold: a repeat is then listed once more, nothing is lost).
    pub fn restore(bytes: &[u8], window_us: i64) -> Option<Fold> {
        let saved: Saved = serde_json::from_slice(bytes).ok()?;
        if saved.version != STATE_VERSION {
            return None;
        }
        let mut incidents = saved.incidents;
        incidents.retain(|_, l| !l.is_empty());
        let len = incidents.values().map(Vec::len).sum();
        let mut fold = Fold {
            window_us,
            incidents,
            len,
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
        })
    }

    fn head(v: &Verdict) -> bool {
        matches!(v, Verdict::Head { .. })
    }

    #[test]
    fn the_same_new_network_on_another_host_within_the_window_is_folded() {
        let mut f = Fold::new(FOLD_WINDOW_US);
        assert_eq!(
            offer(&mut f, &a(1, "web1", "198.51.7.9", 0)),
            Verdict::Head { overlay: None }
        );
        // Another address of the same /16, on another host, 23 h later: folded.
        let v = offer(&mut f, &a(2, "web2", "198.51.200.1", 23 * H));
        let Verdict::Folded { into, overlay } = v else {
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
        let mut f = Fold::new(FOLD_WINDOW_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "2001:db8:1:1::1", 0))));
        assert!(!head(&offer(&mut f, &a(2, "web2", "2001:db8:1:ff::2", H))));
        assert!(head(&offer(&mut f, &a(3, "web3", "2001:db8:2::1", H))));
    }

    #[test]
    fn another_fact_or_a_worse_one_is_never_folded() {
        let mut f = Fold::new(FOLD_WINDOW_US);
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
        let mut f = Fold::new(FOLD_WINDOW_US);
        assert!(head(&offer(&mut f, &a(1, "web1", "198.51.7.9", 0))));
        assert!(head(&offer(&mut f, &a(2, "web1", "198.51.7.10", H))));
        // A window of 0 folds nothing.
        let mut f = Fold::new(0);
        assert!(head(&offer(&mut f, &a(1, "web1", "198.51.7.9", 0))));
        assert!(head(&offer(&mut f, &a(2, "web2", "198.51.7.9", 0))));
        // A lower severity folds into a higher head.
        let mut f = Fold::new(FOLD_WINDOW_US);
        let mut high = a(1, "web1", "198.51.7.9", 0);
        high.sev = 47;
        assert!(head(&offer(&mut f, &high)));
        assert!(!head(&offer(&mut f, &a(2, "web2", "198.51.7.9", H))));
    }

    #[test]
    fn a_replay_changes_nothing_and_a_restore_continues() {
        let mut f = Fold::new(FOLD_WINDOW_US);
        let xs = [
            a(1, "web1", "198.51.7.9", 0),
            a(2, "web2", "198.51.7.9", H),
            a(3, "web3", "198.51.7.9", 2 * H),
        ];
        let first: Vec<Verdict> = xs.iter().map(|x| offer(&mut f, x)).collect();
        let saved = f.save();
        assert!(!f.is_dirty());
        let mut g = Fold::restore(&saved, FOLD_WINDOW_US).unwrap();
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
        assert!(Fold::restore(b"{\"version\":99,\"incidents\":{}}", FOLD_WINDOW_US).is_none());
        assert!(Fold::restore(b"junk", FOLD_WINDOW_US).is_none());
    }

    #[test]
    fn a_flood_of_new_networks_keeps_the_table_bounded() {
        let mut f = Fold::new(FOLD_WINDOW_US);
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
        let mut f = Fold::new(FOLD_WINDOW_US);
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
