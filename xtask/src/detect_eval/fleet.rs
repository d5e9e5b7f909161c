//! The collector's fleet rules as a [`Detections`]: every host's login events go, in time
//! order, through `collector::fleet::evaluate` (the offline form of the engine the collector
//! runs on stored batches), and each agent's heartbeat, every minute except while an outage
//! holds it, through the engine's `contact` and `tick` for the silence rule (which `evaluate`
//! leaves out: it has no contacts).

use std::collections::{BTreeSet, HashMap};

use agent_core::{Action, LoginEvent, Outcome};
use collector::fleet::{self, Engine, FleetAlert, FleetConfig, FleetEvent};

use super::scenario::Outage;
use super::{Detections, Found};

/// The agent's heartbeat period, seconds (the agent's default).
const HEARTBEAT: i64 = 60;
const US: i64 = 1_000_000;

/// One login event, owned until the end.
struct Login {
    time_us: i64,
    host: usize,
    user: Option<String>,
    source: Option<String>,
    action: &'static str,
    outcome: &'static str,
}

/// What an alert's evidence names: (host, µs, user, source, action).
type EvidenceKey = (usize, i64, Option<String>, Option<String>, &'static str);

pub(crate) struct Fleet {
    config: FleetConfig,
    hosts: Vec<String>,
    logins: Vec<Login>,
    /// The sequence numbers of the events each evidence key can stand for.
    index: HashMap<EvidenceKey, Vec<u64>>,
    /// (host, from, to, attack), seconds.
    outages: Vec<(usize, i64, i64, Option<usize>)>,
    /// The silence rule's engine (contacts and ticks only).
    silence: Engine,
    next_beat: Option<i64>,
    silent_keys: BTreeSet<String>,
}

impl Fleet {
    pub(crate) fn new(config: FleetConfig, hosts: &[String], outages: &[Outage]) -> Fleet {
        Fleet {
            silence: Engine::new(config.clone()),
            config,
            hosts: hosts.to_vec(),
            logins: Vec::new(),
            index: HashMap::new(),
            outages: outages
                .iter()
                .map(|o| (o.host, o.from, o.to, o.attack))
                .collect(),
            next_beat: None,
            silent_keys: BTreeSet::new(),
        }
    }

    /// Heartbeats of the agents that are up, and the engine's ticks, up to `until` seconds.
    fn beat(&mut self, until: i64) -> Vec<Found> {
        let mut out = Vec::new();
        let mut t = *self.next_beat.get_or_insert(until);
        while t <= until {
            for (h, name) in self.hosts.iter().enumerate() {
                let down = self
                    .outages
                    .iter()
                    .any(|&(host, from, to, _)| host == h && (from..to).contains(&t));
                if !down {
                    self.silence.contact(name, Some(name), t * US);
                }
            }
            self.silence.tick(t * US);
            for a in self.silence.take_alerts() {
                // Raised once; its later form (the agent back) is the same alert.
                if self.silent_keys.insert(a.key.clone()) {
                    out.push(self.silent_found(&a));
                }
            }
            t += HEARTBEAT;
        }
        self.next_beat = Some(t);
        out
    }

    fn silent_found(&self, a: &FleetAlert) -> Found {
        let last = a.start_us / US;
        let host = a
            .host
            .as_ref()
            .and_then(|h| self.hosts.iter().position(|n| *n == h.agent));
        let attacks = self
            .outages
            .iter()
            .filter(|&&(h, from, to, _)| Some(h) == host && (from - HEARTBEAT..=to).contains(&last))
            .filter_map(|o| o.3)
            .collect();
        Found {
            rule: a.rule.id(),
            severity: a.severity(),
            at: a.fired_us / US,
            cites: Vec::new(),
            attacks,
            message: a.message(),
            fold: None,
        }
    }
}

impl Detections for Fleet {
    fn observe(&mut self, host: usize, seq: u64, ev: &LoginEvent<'_>) -> Vec<Found> {
        let Some(ts) = ev.timestamp else {
            return Vec::new();
        };
        let out = self.beat(ts.secs);
        if !matches!(
            ev.action,
            Action::AuthSuccess | Action::AuthFailure | Action::InvalidUser
        ) {
            return out;
        }
        let login = Login {
            time_us: ts.secs * US,
            host,
            user: ev.user.map(|u| u.to_string()),
            source: ev.source_ip().map(|ip| ip.to_string()),
            action: ev.action.as_str(),
            outcome: match ev.outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
                Outcome::Unknown => "unknown",
            },
        };
        self.index
            .entry((
                host,
                login.time_us,
                login.user.clone(),
                login.source.clone(),
                login.action,
            ))
            .or_default()
            .push(seq);
        self.logins.push(login);
        out
    }

    fn finish(&mut self) -> Vec<Found> {
        let events = self.logins.iter().map(|l| FleetEvent {
            time_us: l.time_us,
            agent: &self.hosts[l.host],
            hostname: Some(&self.hosts[l.host]),
            user: l.user.as_deref(),
            source: l.source.as_deref(),
            action: l.action,
            outcome: Some(l.outcome),
        });
        fleet::evaluate(&self.config, events)
            .into_iter()
            .map(|a| {
                let cites = a
                    .evidence
                    .iter()
                    .filter_map(|e| {
                        let host = self.hosts.iter().position(|n| *n == e.host.agent)?;
                        let action = Action::from_str_exact(&e.action)?.as_str();
                        let key = (host, e.time_us, e.user.clone(), e.source.clone(), action);
                        self.index.get(&key).map(|seqs| (host, seqs))
                    })
                    .flat_map(|(host, seqs)| seqs.iter().map(move |&s| (host, s)))
                    .collect();
                Found {
                    rule: a.rule.id(),
                    severity: a.severity(),
                    at: a.fired_us / US,
                    cites,
                    attacks: Vec::new(),
                    message: a.message(),
                    fold: None,
                }
            })
            .collect()
    }
}
