//! `cargo xtask detect-eval`: the detections scored on labelled scenarios.
//!
//! [`scenario`] writes weeks of a small fleet's auth logs with injected attacks, every line
//! labelled. Each line goes through agent-core's parser and then every [`Detections`] in time
//! order across the fleet (the edge detector per host, in-process, its alerts folded as the
//! collector folds them; the fleet rules as another `Detections`). An alert is true when one of the events it cites belongs to an attack,
//! false otherwise. Printed per rule: alerts on attacks, false alerts per 10 000 benign login
//! attempts (all and high severity); per attack kind: how many were detected and the delay.

mod fleet;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use agent_core::detect::{Cidr, DefaultDetector, DetectConfig, Detector, HIGH, MEDIUM, Rule};
use agent_core::syslog::Context;
use agent_core::{LoginEvent, Parsed, Timestamp, parse_line};
use anyhow::{Result, bail};

use fleet::Fleet;
use scenario::{Kind, Scenario};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seeds to run (each is another fleet and other attacks). Defaults to three random ones.
    #[arg(long, num_args = 1..)]
    seed: Vec<u64>,
    /// How many random seeds when `--seed` is not given.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Days of activity.
    #[arg(long, default_value_t = 21)]
    days: i64,
    /// Attacks of each kind per seed.
    #[arg(long, default_value_t = 3)]
    per_kind: usize,
    /// Also turn on the opt-in rules (logins outside working hours).
    #[arg(long)]
    opt_in: bool,
    /// Print every false alert with the lines it cites, and every missed attack with its
    /// first lines.
    #[arg(long)]
    verbose: bool,
    /// Count every edge alert as its agent raised it, without the collector's fold of one
    /// incident repeated on several hosts (to compare).
    #[arg(long)]
    no_fold: bool,
}

/// An alert as the evaluation sees it.
pub(crate) struct Found {
    rule: &'static str,
    severity: u8,
    /// When it was raised (the event time that fired it).
    at: i64,
    /// (host, per-host sequence) of the events it cites.
    cites: Vec<(usize, u64)>,
    /// Attacks it is about that no event stands for (an agent stopped by an attacker).
    attacks: Vec<usize>,
    message: String,
    /// Its part in the collector's fold of one incident on several hosts.
    fold: Option<FoldRole>,
}

/// An edge alert's part in the collector's fold ([`collector::fold`]).
pub(crate) enum FoldRole {
    /// Listed; repeats may fold into it (its key).
    Head(String),
    /// Not listed: folded into the head with this key, which is now listed at this severity
    /// (raised when a follow-on was escalated into it).
    Into(String, u8),
    /// Not listed: a network the fleet saw the user log in from on another host.
    Known,
}

/// A set of detections fed the fleet's events in time order. The edge detector is one; the
/// collector's fleet rules can be another.
pub(crate) trait Detections {
    fn observe(&mut self, host: usize, seq: u64, ev: &LoginEvent<'_>) -> Vec<Found>;
    /// After the last event: alerts given only at the end (an offline evaluation's).
    fn finish(&mut self) -> Vec<Found> {
        Vec::new()
    }
}

/// agent-core's detector, one per host, as the agents run it, and what the operator sees of
/// its alerts at the collector: a repeat of one incident on another host is folded into the
/// first by the collector's own [`collector::fold::Fold`], so it is not counted again (and an
/// attack whose only alert was folded into a benign one counts as missed).
struct Edge {
    detectors: Vec<Box<DefaultDetector>>,
    hosts: Vec<String>,
    fold: collector::fold::Fold,
    /// Alerts offered to the fold, in the order the collector would read them.
    offered: i64,
}

impl Edge {
    fn new(hosts: &[String], config: DetectConfig, fold: (i64, i64)) -> Edge {
        Edge {
            detectors: hosts
                .iter()
                .map(|_| Box::new(Detector::new(config)))
                .collect(),
            hosts: hosts.to_vec(),
            fold: collector::fold::Fold::new(fold.0, fold.1),
            offered: 0,
        }
    }
}

impl Detections for Edge {
    fn observe(&mut self, host: usize, seq: u64, ev: &LoginEvent<'_>) -> Vec<Found> {
        let user = ev.user.map(|u| u.to_string());
        let alerts = self.detectors[host].observe_seq(ev, seq);
        if ev.action == agent_core::Action::AuthSuccess
            && let (Some(u), Some(ip), Some(ts)) = (&user, ev.source_ip(), ev.timestamp)
        {
            self.fold
                .login(u, ip, &self.hosts[host], ts.secs * 1_000_000);
        }
        if ev.action == agent_core::Action::Sudo
            && ev.outcome == agent_core::Outcome::Success
            && let (Some(u), Some(ts)) = (&user, ev.timestamp)
        {
            self.fold.sudo(u, &self.hosts[host], ts.secs * 1_000_000);
        }
        let mut out = Vec::with_capacity(alerts.len());
        for a in alerts.iter() {
            self.offered += 1;
            let key = format!("{host}:{seq}:{}", self.offered);
            let verdict = self.fold.offer(&collector::fold::EdgeAlert {
                key: &key,
                pos: (self.offered, 0),
                rule: a.rule.as_str(),
                // The user of the event that fired it (the alert's `user.name`).
                user: user.as_deref(),
                source: a.source,
                agent: &self.hosts[host],
                hostname: Some(&self.hosts[host]),
                time_us: a.end.secs * 1_000_000,
                severity: i64::from(a.severity),
                evidence: a.cites(),
                message: None,
            });
            let fold = match verdict {
                collector::fold::Verdict::Folded { into, severity, .. } => {
                    FoldRole::Into(into, u8::try_from(severity).unwrap_or(u8::MAX))
                }
                collector::fold::Verdict::Head { .. } => FoldRole::Head(key),
                collector::fold::Verdict::Known => FoldRole::Known,
            };
            out.push(Found {
                rule: a.rule.as_str(),
                severity: a.severity,
                at: a.end.secs,
                cites: a.cites().iter().map(|&s| (host, s)).collect(),
                attacks: Vec::new(),
                message: a.to_string(),
                fold: Some(fold),
            });
        }
        out
    }
}

/// The configuration an operator of this fleet would write: the defaults, the backup server
/// allowed to log in as root, and the bastion's inside address allowed for first-seen sources
/// (a login through the bastion is judged where it enters, on the bastion; the hops on from
/// its inside address are the fleet rules', which see the whole round).
fn fleet_config(opt_in: bool, seed: u32) -> DetectConfig {
    let mut c = DetectConfig {
        hash_seed: seed,
        ..DetectConfig::default()
    };
    if let Some(net) = Cidr::parse("10.0.0.5/32") {
        let _ = c.allow_mut(Rule::RootLogin).push_net(net);
    }
    if let Some(net) = Cidr::parse("10.0.1.3/32") {
        let _ = c.allow_mut(Rule::FirstSeenSource).push_net(net);
    }
    if opt_in {
        c.off_hours.enabled = true;
        let _ = c
            .allow_mut(Rule::OffHoursLogin)
            .push_net(Cidr::parse("10.0.0.0/24").expect("a network"));
    }
    c
}

/// The collector's `[fleet]` an operator of this fleet would write: the defaults, the
/// automation servers (backup, monitoring, CI, configuration management), which log in on
/// every host all day, left out. The bastion is not: its inside address is how an attacker
/// moves on too.
fn collector_config() -> collector::fleet::FleetConfig {
    collector::fleet::FleetConfig {
        ignore_sources: ["10.0.0.5", "10.0.0.9", "10.0.0.20", "10.0.0.21"]
            .iter()
            .filter_map(|a| format!("{a}/32").parse().ok())
            .collect(),
        ..collector::fleet::FleetConfig::default()
    }
}

/// The collector's `[fleet] fold-window` and `network-memory`, µs.
fn fold_window(c: &collector::fleet::FleetConfig) -> (i64, i64) {
    let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    (micros(c.fold_window), micros(c.network_memory))
}

#[derive(Default)]
struct RuleScore {
    true_alerts: usize,
    false_alerts: usize,
    /// At medium or high severity.
    false_medium: usize,
    false_high: usize,
}

#[derive(Default)]
struct KindScore {
    injected: usize,
    detected: usize,
    delays: Vec<i64>,
    rules: BTreeSet<&'static str>,
}

struct Score {
    benign_attempts: u64,
    lines: usize,
    rules: BTreeMap<&'static str, RuleScore>,
    kinds: BTreeMap<Kind, KindScore>,
    false_examples: Vec<String>,
    /// (host, per-host sequence) -> index in the scenario's lines, to quote cited events.
    texts: BTreeMap<(usize, u64), usize>,
    /// Listed edge alerts repeats may fold into: key -> (about an attack, rule, severity it
    /// was counted at).
    heads: BTreeMap<String, (bool, &'static str, u8)>,
    /// Edge alerts folded at the collector (not listed, not scored).
    folded: usize,
    /// Of those, alerts about an attack; and of these, folded into an alert about none.
    folded_attack: usize,
    folded_attack_into_benign: usize,
    /// Attacks no listed alert was about (indexes into the scenario's attacks).
    missed: Vec<usize>,
}

fn evaluate(s: &Scenario, detections: &mut [&mut dyn Detections]) -> Score {
    let ctx = Context::new(Timestamp::from_secs(s.lines.last().map_or(0, |l| l.t)));
    let mut seqs = vec![0u64; s.hosts.len()];
    // (host, seq) -> attack index, for the events of attacks.
    let mut labels: BTreeMap<(usize, u64), usize> = BTreeMap::new();
    let mut first_alert: BTreeMap<usize, (i64, BTreeSet<&'static str>)> = BTreeMap::new();
    // Each attack's first line.
    let mut began: BTreeMap<usize, i64> = BTreeMap::new();
    let mut score = Score {
        benign_attempts: 0,
        lines: s.lines.len(),
        rules: BTreeMap::new(),
        kinds: BTreeMap::new(),
        false_examples: Vec::new(),
        texts: BTreeMap::new(),
        heads: BTreeMap::new(),
        folded: 0,
        folded_attack: 0,
        folded_attack_into_benign: 0,
        missed: Vec::new(),
    };
    for (n, line) in s.lines.iter().enumerate() {
        let Parsed::Event(ev) = parse_line(line.text.as_bytes(), &ctx) else {
            continue;
        };
        let seq = seqs[line.host];
        seqs[line.host] += 1;
        score.texts.insert((line.host, seq), n);
        match line.attack {
            Some(a) => {
                labels.insert((line.host, seq), a);
                began.entry(a).or_insert(line.t);
            }
            None => {
                score.benign_attempts += u64::from(agent_core::detect::attempts(&ev));
                if ev.action == agent_core::Action::AuthSuccess {
                    score.benign_attempts += 1;
                }
            }
        }
        for d in detections.iter_mut() {
            for found in d.observe(line.host, seq, &ev) {
                tally(&mut score, &mut first_alert, &labels, s, found);
            }
        }
    }
    for d in detections.iter_mut() {
        for found in d.finish() {
            tally(&mut score, &mut first_alert, &labels, s, found);
        }
    }
    for (i, attack) in s.attacks.iter().enumerate() {
        let k = score.kinds.entry(attack.kind).or_default();
        k.injected += 1;
        if let Some((at, rules)) = first_alert.get(&i) {
            k.detected += 1;
            k.delays
                .push(at - began.get(&i).copied().unwrap_or(attack.start));
            k.rules.extend(rules.iter().copied());
        } else {
            score.missed.push(i);
        }
    }
    score
}

/// Scores one alert: true when an event it cites (or an attack it names) belongs to an attack.
/// An alert the collector folded into another is not listed, so not scored: its attack is
/// credited only through the alert it was folded into.
fn tally(
    score: &mut Score,
    first_alert: &mut BTreeMap<usize, (i64, BTreeSet<&'static str>)>,
    labels: &BTreeMap<(usize, u64), usize>,
    s: &Scenario,
    found: Found,
) {
    let attacks: BTreeSet<usize> = found
        .cites
        .iter()
        .filter_map(|c| labels.get(c).copied())
        .chain(found.attacks.iter().copied())
        .collect();
    match &found.fold {
        Some(FoldRole::Known) => {
            score.folded += 1;
            if !attacks.is_empty() {
                score.folded_attack += 1;
            }
            return;
        }
        Some(FoldRole::Into(head, listed)) => {
            score.folded += 1;
            let Some((about_attack, rule, counted)) = score.heads.get_mut(head) else {
                return;
            };
            if !attacks.is_empty() {
                score.folded_attack += 1;
                if !*about_attack {
                    score.folded_attack_into_benign += 1;
                }
            }
            // An escalated head is listed at its new severity: a false one counts at it.
            if *listed > *counted {
                if !*about_attack {
                    let r = score.rules.entry(rule).or_default();
                    r.false_medium += usize::from(*listed >= MEDIUM && *counted < MEDIUM);
                    r.false_high += usize::from(*listed >= HIGH && *counted < HIGH);
                }
                *counted = *listed;
            }
            return;
        }
        Some(FoldRole::Head(key)) => {
            score.heads.insert(
                key.clone(),
                (!attacks.is_empty(), found.rule, found.severity),
            );
        }
        None => {}
    }
    let r = score.rules.entry(found.rule).or_default();
    if attacks.is_empty() {
        r.false_alerts += 1;
        if found.severity >= MEDIUM {
            r.false_medium += 1;
        }
        if found.severity >= HIGH {
            r.false_high += 1;
        }
        let host = found.cites.first().map_or("-", |c| s.hosts[c.0].as_str());
        let mut e = format!(
            "{host} {:>2} {:<22} {}",
            found.severity, found.rule, found.message
        );
        for c in &found.cites {
            if let Some(&n) = score.texts.get(c) {
                let _ = write!(e, "\n      | {}", s.lines[n].text);
            }
        }
        score.false_examples.push(e);
    } else {
        r.true_alerts += 1;
    }
    for a in attacks {
        let e = first_alert.entry(a).or_insert((found.at, BTreeSet::new()));
        e.0 = e.0.min(found.at);
        e.1.insert(found.rule);
    }
}

/// Lines of each missed attack `--verbose` prints.
const MISSED_LINES: usize = 40;

fn per_10k(n: usize, attempts: u64) -> f64 {
    n as f64 * 10_000.0 / attempts.max(1) as f64
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

/// Per 10 000 benign login attempts: false alerts of any severity, of medium or high, of high.
struct Rates {
    all: f64,
    medium: f64,
    high: f64,
}

fn report(seed: u64, s: &Scenario, score: &Score, verbose: bool) -> (Rates, bool) {
    println!(
        "\nseed {seed}: {} hosts, {} lines, {} attacks, {} benign login attempts",
        s.hosts.len(),
        score.lines,
        s.attacks.len(),
        score.benign_attempts
    );
    println!(
        "  {:<24} {:>6} {:>6} {:>10} {:>12} {:>11}",
        "rule", "true", "false", "false/10k", "med+ f/10k", "high f/10k"
    );
    let (mut all, mut medium, mut high) = (0, 0, 0);
    let n = score.benign_attempts;
    for (rule, r) in &score.rules {
        all += r.false_alerts;
        medium += r.false_medium;
        high += r.false_high;
        println!(
            "  {rule:<24} {:>6} {:>6} {:>10.2} {:>12.2} {:>11.2}",
            r.true_alerts,
            r.false_alerts,
            per_10k(r.false_alerts, n),
            per_10k(r.false_medium, n),
            per_10k(r.false_high, n)
        );
    }
    let rates = Rates {
        all: per_10k(all, n),
        medium: per_10k(medium, n),
        high: per_10k(high, n),
    };
    println!(
        "  {:<24} {:>6} {all:>6} {:>10.2} {:>12.2} {:>11.2}",
        "all rules", "", rates.all, rates.medium, rates.high
    );
    println!(
        "  {:<52} {:>9} {:>12}  rules",
        "attack kind", "detected", "median delay"
    );
    let mut all_detected = true;
    for (kind, k) in &score.kinds {
        let mut d = k.delays.clone();
        d.sort_unstable();
        let median = d.get(d.len() / 2).map_or("-".to_owned(), |&x| span(x));
        all_detected &= k.detected > 0;
        println!(
            "  {:<52} {:>5}/{:<3} {median:>12}  {}",
            kind.name(),
            k.detected,
            k.injected,
            k.rules.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "  edge alerts folded at the collector (one incident on several hosts): {}; about an \
         attack: {} (into an alert about none: {})",
        score.folded, score.folded_attack, score.folded_attack_into_benign
    );
    if verbose {
        for e in &score.false_examples {
            println!("  false: {e}");
        }
        // Each missed attack with its first lines, to see what no rule caught.
        for &i in &score.missed {
            let a = &s.attacks[i];
            println!("  missed: {} on {}", a.kind.name(), s.hosts[a.host]);
            let lines = s.lines.iter().filter(|l| l.attack == Some(i));
            for l in lines.take(MISSED_LINES) {
                println!("      | {}", l.text);
            }
        }
    }
    (rates, all_detected)
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let seeds: Vec<u64> = if args.seed.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut rng = scenario::Rng::new(now);
        (0..args.seeds).map(|_| rng.next() % 1_000_000).collect()
    } else {
        args.seed.clone()
    };
    if args.days < 5 {
        bail!("--days must be at least 5 (the attacks start after three days of learning)");
    }
    let mut ok = true;
    let mut rows = Vec::new();
    for &seed in &seeds {
        let s = scenario::build(seed, args.days, args.per_kind);
        let mut edge = Edge::new(
            &s.hosts,
            fleet_config(args.opt_in, seed as u32),
            if args.no_fold {
                (0, 0)
            } else {
                fold_window(&collector_config())
            },
        );
        let mut fleet = Fleet::new(collector_config(), &s.hosts, &s.outages);
        let score = evaluate(&s, &mut [&mut edge, &mut fleet]);
        let (rates, detected) = report(seed, &s, &score, args.verbose);

        ok &= detected && rates.all < 2.0 && rates.high < 0.5;
        rows.push((seed, rates, detected));
    }
    println!("\nseed      false/10k  med+ f/10k  high f/10k  every attack kind detected");
    for (seed, r, detected) in &rows {
        println!(
            "{seed:<9} {:>9.2} {:>11.2} {:>11.2}  {detected}",
            r.all, r.medium, r.high
        );
    }
    println!(
        "targets: every kind detected (each row above shows how many of its attacks were); \
         false alerts of any severity < 2 and of high severity < 0.5 per 10 000 benign login \
         attempts"
    );
    if !ok {
        bail!("a target was missed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short runs of two seeds: the pipeline works end to end and finds attacks.
    #[test]
    fn a_short_scenario_detects_its_attacks() {
        let s = scenario::build(11, 6, 1);
        let mut edge = Edge::new(
            &s.hosts,
            fleet_config(false, 11),
            fold_window(&collector_config()),
        );
        let mut fleet = Fleet::new(collector_config(), &s.hosts, &s.outages);
        let score = evaluate(&s, &mut [&mut edge, &mut fleet]);
        let detected: usize = score.kinds.values().map(|k| k.detected).sum();
        // A first login to a host needs the fleet's week of learning: not in six days.
        assert!(detected >= Kind::ALL.len() - 3, "{detected}");
        assert!(score.benign_attempts > 10_000);
        // The fleet's rules score: the silence of a stopped agent is seen.
        assert!(score.rules.contains_key("fleet_agent_silent"));
    }
}
