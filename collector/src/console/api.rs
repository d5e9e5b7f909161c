//! `/api/v1/...`: the console's JSON answers, each built from [`Store::query`] with a bounded
//! `limit`, so one request reads at most [`MAX_SCAN_EVENTS`] events whatever the store holds.
//!
//! Parameters (query string, all optional): `host`, `user`, `source_ip`, `action`, `since` and
//! `until` (RFC 3339 or µs since the epoch), `limit` (capped at [`MAX_PAGE`]), `offset`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{EventRow, Filter, Store, StoreError};

/// Most rows in one page.
pub const MAX_PAGE: usize = 200;
/// Rows in a page when `limit` is not given.
pub(crate) const DEFAULT_PAGE: usize = 50;
/// Most events one request reads from the store (its cost cap).
pub(crate) const MAX_SCAN_EVENTS: u64 = 20_000;
/// Alerts one request reads per rule.
pub(crate) const MAX_SCAN_ALERTS: u64 = 2_000;
/// Evidence and follow-up events returned with an alert group.
pub(crate) const MAX_EVIDENCE: usize = 200;
/// Alerts of one rule, host, address and user closer than this are one attack (one row).
pub(crate) const GROUP_GAP_US: i64 = 3600 * 1_000_000;
/// Default reach back of the aggregates (timeline, users, sources): 7 days.
pub(crate) const DEFAULT_SPAN_US: i64 = 7 * 24 * 3600 * 1_000_000;
/// How far after an alert "what the user did next" looks: 24 h.
pub(crate) const NEXT_SPAN_US: i64 = 24 * 3600 * 1_000_000;

/// The alert rules whose `event.action` the alert listing reads.
const ALERT_ACTIONS: [&str; 4] = [
    "brute_force",
    "password_spray",
    "success_after_failures",
    "first_seen_source",
];
const FAILURES: [&str; 2] = ["auth_failure", "invalid_user"];

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// A parameter could not be read.
    #[error("{name}: {reason}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No such endpoint.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A previous request panicked holding the connection.
    #[error("the console's store connection is unusable")]
    Poisoned,
}

impl ApiError {
    /// The HTTP status for this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Param { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Parsed query string.
#[derive(Debug, Default)]
struct Params {
    host: Option<String>,
    user: Option<String>,
    source_ip: Option<String>,
    action: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: usize,
    offset: usize,
    /// Comma-separated `event.sequence` numbers an alert cites (evidence only).
    cites: String,
}

fn time_param(name: &'static str, v: &str) -> Result<i64, ApiError> {
    if let Ok(us) = v.parse::<i64>() {
        return Ok(us);
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_microsecond())
        .map_err(|e| ApiError::Param {
            name,
            reason: format!("not RFC 3339 nor µs since the epoch: {e}"),
        })
}

fn params(query: &str) -> Result<Params, ApiError> {
    let mut p = Params {
        limit: DEFAULT_PAGE,
        ..Params::default()
    };
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = super::percent_decode(v);
        let text = || (!v.is_empty()).then(|| v.clone());
        let count = |name: &'static str| {
            v.parse::<usize>().map_err(|_| ApiError::Param {
                name,
                reason: "not a whole number".to_owned(),
            })
        };
        match k {
            "host" => p.host = text(),
            "user" => p.user = text(),
            "source_ip" => p.source_ip = text(),
            "action" => p.action = text(),
            "since" if !v.is_empty() => p.since = Some(time_param("since", &v)?),
            "until" if !v.is_empty() => p.until = Some(time_param("until", &v)?),
            // The cap: a bigger page is cut to MAX_PAGE, not refused.
            "limit" => p.limit = count("limit")?.clamp(1, MAX_PAGE),
            "offset" => p.offset = count("offset")?,
            "cites" => p.cites = v.clone(),
            _ => {}
        }
    }
    Ok(p)
}

impl Params {
    fn filter(&self, limit: u64, documents: bool) -> Filter {
        Filter {
            since_us: self.since,
            user: self.user.clone(),
            source_ip: self.source_ip.clone(),
            host: self.host.clone(),
            action: self.action.clone(),
            limit,
            documents,
        }
    }
}

/// One event as the API shows it.
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    timestamp_us: i64,
    host: Option<&'a str>,
    action: Option<&'a str>,
    outcome: Option<&'a str>,
    user: Option<&'a str>,
    target_user: Option<&'a str>,
    source_ip: Option<&'a str>,
    source_port: Option<u16>,
    process: Option<&'a str>,
    method: Option<&'a str>,
    /// The event as the agent sent it (its `message` is the raw log line when shipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<Value>,
}

fn event_json(e: &EventRow) -> EventJson<'_> {
    EventJson {
        timestamp_us: e.timestamp_us,
        host: e.host.as_deref(),
        action: e.action.as_deref(),
        outcome: e.outcome.as_deref(),
        user: e.user.as_deref(),
        target_user: e.target_user.as_deref(),
        source_ip: e.source_ip.as_deref(),
        source_port: e.source_port,
        process: e.process.as_deref(),
        method: e.method.as_deref(),
        doc: e.doc.as_deref().and_then(|d| serde_json::from_str(d).ok()),
    }
}

/// Answers `path` (under `/api/v1/`) with a JSON body.
pub(crate) fn answer(
    store: &Store,
    path: &str,
    query: &str,
    stale_after: Duration,
) -> Result<String, ApiError> {
    let p = params(query)?;
    let v = match path {
        "/api/v1/alerts" => alerts(store, &p)?,
        "/api/v1/alerts/evidence" => evidence(store, &p)?,
        "/api/v1/events" => events(store, &p)?,
        "/api/v1/timeline" => timeline(store, &p)?,
        "/api/v1/hosts" => hosts(store, &p, stale_after)?,
        "/api/v1/users" => users(store, &p)?,
        "/api/v1/sources" => sources(store, &p)?,
        other => return Err(ApiError::NotFound(other.to_owned())),
    };
    Ok(v.to_string())
}

fn page<T: Serialize>(items: Vec<T>, p: &Params, truncated: bool) -> Value {
    let total = items.len();
    let rows: Vec<T> = items.into_iter().skip(p.offset).take(p.limit).collect();
    let next = (p.offset + rows.len() < total).then_some(p.offset + rows.len());
    json!({
        "items": rows,
        "offset": p.offset,
        "limit": p.limit,
        "total": total,
        "next_offset": next,
        "truncated": truncated,
    })
}

/// One attack: alerts of one rule, host, address and user, each within [`GROUP_GAP_US`] of
/// the previous.
#[derive(Debug, Serialize)]
struct AlertGroup {
    rule: String,
    host: Option<String>,
    source_ip: Option<String>,
    user: Option<String>,
    severity: u64,
    reason: String,
    /// Alerts in the group.
    alerts: u64,
    /// Attempts the alerts counted (the largest `authtrail.count`).
    attempts: u64,
    /// The earliest `event.start` of the group's evidence.
    start_us: i64,
    /// The latest alert.
    end_us: i64,
    /// The `event.sequence` of the events the alerts cite (`authtrail.evidence`), at most
    /// [`MAX_EVIDENCE`].
    cites: BTreeSet<u64>,
}

/// (rule, host, source address, user): what makes alerts one attack.
type GroupKey = (String, Option<String>, Option<String>, Option<String>);
/// (time, action, user, source port): an event's identity when its document is fetched.
type EventKey = (i64, Option<String>, Option<String>, Option<u16>);

fn doc_time(doc: &Value, ptr: &str) -> Option<i64> {
    doc.pointer(ptr)?
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

fn alerts(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let mut rows = Vec::new();
    let mut truncated = false;
    for rule in ALERT_ACTIONS {
        if p.action.as_deref().is_some_and(|a| a != rule) {
            continue;
        }
        let mut f = p.filter(MAX_SCAN_ALERTS, true);
        f.action = Some(rule.to_owned());
        let found = store.query(&f)?;
        truncated |= found.len() as u64 == MAX_SCAN_ALERTS;
        rows.extend(found);
    }
    let mut groups: Vec<AlertGroup> = Vec::new();
    // Oldest first, so each alert joins the group its predecessor opened.
    rows.sort_by_key(|e| e.timestamp_us);
    let mut open: HashMap<GroupKey, usize> = HashMap::new();
    for e in rows {
        let Some(doc) = e
            .doc
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        else {
            continue;
        };
        if doc.pointer("/event/kind").and_then(Value::as_str) != Some("alert") {
            continue;
        }
        if p.until.is_some_and(|u| e.timestamp_us > u) {
            continue;
        }
        let rule = e.action.clone().unwrap_or_default();
        let key = (
            rule.clone(),
            e.host.clone(),
            e.source_ip.clone(),
            e.user.clone(),
        );
        let start = doc_time(&doc, "/event/start").unwrap_or(e.timestamp_us);
        let severity = doc
            .pointer("/event/severity")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reason = doc
            .pointer("/event/reason")
            .or_else(|| doc.pointer("/message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let count = doc
            .pointer("/authtrail/count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let cites = doc
            .pointer("/authtrail/evidence")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<u64>>())
            .unwrap_or_default();
        match open.get(&key).copied() {
            Some(i) if e.timestamp_us - groups[i].end_us <= GROUP_GAP_US => {
                let g = &mut groups[i];
                g.alerts += 1;
                g.attempts = g.attempts.max(count);
                g.severity = g.severity.max(severity);
                g.start_us = g.start_us.min(start);
                g.end_us = e.timestamp_us;
                g.reason = reason;
                for c in cites {
                    if g.cites.len() < MAX_EVIDENCE {
                        g.cites.insert(c);
                    }
                }
            }
            _ => {
                open.insert(key, groups.len());
                groups.push(AlertGroup {
                    rule,
                    host: e.host,
                    source_ip: e.source_ip,
                    user: e.user,
                    severity,
                    reason,
                    alerts: 1,
                    attempts: count,
                    start_us: start,
                    end_us: e.timestamp_us,
                    cites: cites.into_iter().take(MAX_EVIDENCE).collect(),
                });
            }
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.end_us));
    Ok(page(groups, p, truncated))
}

/// An alert group's evidence (what its host saw from its address between `since` and
/// `until`: the failures and the success) and what its user did next on that host.
fn evidence(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let (Some(since), Some(until)) = (p.since, p.until) else {
        return Err(ApiError::Param {
            name: "since",
            reason: "evidence needs since and until (the group's start_us and end_us)".to_owned(),
        });
    };
    let mut f = Filter {
        since_us: Some(since),
        host: p.host.clone(),
        source_ip: p.source_ip.clone(),
        limit: MAX_SCAN_EVENTS,
        documents: false,
        ..Filter::default()
    };
    if p.source_ip.is_none() {
        f.user = p.user.clone();
    }
    let mut cited: Vec<EventRow> = store
        .query(&f)?
        .into_iter()
        .filter(|e| {
            e.timestamp_us <= until && !ALERT_ACTIONS.contains(&e.action.as_deref().unwrap_or(""))
        })
        .collect();
    let cited_total = cited.len();
    // Keep the newest MAX_EVIDENCE (those nearest the alert), then fetch only their documents.
    cited.drain(..cited.len().saturating_sub(MAX_EVIDENCE));
    let cited = with_documents(store, &f, cited)?;
    let next = match &p.user {
        Some(user) => {
            let f = Filter {
                since_us: Some(until.saturating_add(1)),
                host: p.host.clone(),
                user: Some(user.clone()),
                limit: MAX_SCAN_EVENTS,
                documents: false,
                ..Filter::default()
            };
            let mut rows: Vec<EventRow> = store
                .query(&f)?
                .into_iter()
                .filter(|e| e.timestamp_us <= until.saturating_add(NEXT_SPAN_US))
                .collect();
            rows.truncate(MAX_EVIDENCE);
            with_documents(store, &f, rows)?
        }
        None => Vec::new(),
    };
    // Which other hosts the user reached after the alert.
    let reached: BTreeSet<String> = match &p.user {
        Some(user) => store
            .query(&Filter {
                since_us: Some(until),
                user: Some(user.clone()),
                action: Some("auth_success".to_owned()),
                limit: MAX_SCAN_EVENTS,
                ..Filter::default()
            })?
            .into_iter()
            .filter(|e| e.timestamp_us <= until.saturating_add(NEXT_SPAN_US))
            .filter_map(|e| e.host)
            .filter(|h| Some(h) != p.host.as_ref())
            .collect(),
        None => BTreeSet::new(),
    };
    // The events the alerts cite by `event.sequence` are marked.
    let cites: BTreeSet<u64> = p
        .cites
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .take(MAX_EVIDENCE)
        .collect();
    let evidence: Vec<Value> = cited
        .iter()
        .map(|e| {
            let seq = e
                .doc
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| d.pointer("/event/sequence").and_then(Value::as_u64));
            let mut v = json!(event_json(e));
            v["cited"] = json!(seq.is_some_and(|s| cites.contains(&s)));
            v
        })
        .collect();
    Ok(json!({
        "evidence": evidence,
        "evidence_total": cited_total,
        "next": next.iter().map(event_json).collect::<Vec<_>>(),
        "hosts_reached_after": reached,
    }))
}

/// `rows` (oldest first) with their documents: re-read with `documents` on and the same
/// filter, limited to as many as needed.
fn with_documents(
    store: &Store,
    f: &Filter,
    rows: Vec<EventRow>,
) -> Result<Vec<EventRow>, ApiError> {
    let Some(first) = rows.first() else {
        return Ok(rows);
    };
    let g = Filter {
        since_us: Some(first.timestamp_us),
        documents: true,
        ..f.clone()
    };
    let mut docs: HashMap<EventKey, Vec<String>> = HashMap::new();
    for e in store.query(&g)? {
        if let Some(d) = e.doc {
            docs.entry((e.timestamp_us, e.action, e.user, e.source_port))
                .or_default()
                .push(d);
        }
    }
    Ok(rows
        .into_iter()
        .map(|mut e| {
            e.doc = docs
                .get_mut(&(
                    e.timestamp_us,
                    e.action.clone(),
                    e.user.clone(),
                    e.source_port,
                ))
                .and_then(Vec::pop);
            e
        })
        .collect())
}

fn events(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let found = store.query(&p.filter(MAX_SCAN_EVENTS, false))?;
    let truncated = found.len() as u64 == MAX_SCAN_EVENTS;
    let mut rows: Vec<EventRow> = found
        .into_iter()
        .filter(|e| p.until.is_none_or(|u| e.timestamp_us <= u))
        .collect();
    rows.reverse();
    let total = rows.len();
    let rows: Vec<EventRow> = rows.into_iter().skip(p.offset).take(p.limit).collect();
    let next = (p.offset + rows.len() < total).then_some(p.offset + rows.len());
    Ok(json!({
        "items": rows.iter().map(event_json).collect::<Vec<_>>(),
        "offset": p.offset,
        "limit": p.limit,
        "total": total,
        "next_offset": next,
        "truncated": truncated,
    }))
}

/// The aggregates' events: newest [`MAX_SCAN_EVENTS`] within `since` (default 7 days) and
/// `until`.
fn recent(store: &Store, p: &Params) -> Result<(Vec<EventRow>, bool), ApiError> {
    let mut f = p.filter(MAX_SCAN_EVENTS, false);
    f.since_us = Some(p.since.unwrap_or_else(|| now_us() - DEFAULT_SPAN_US));
    let rows = store.query(&f)?;
    let truncated = rows.len() as u64 == MAX_SCAN_EVENTS;
    Ok((
        rows.into_iter()
            .filter(|e| p.until.is_none_or(|u| e.timestamp_us <= u))
            .collect(),
        truncated,
    ))
}

fn is_failure(e: &EventRow) -> bool {
    FAILURES.contains(&e.action.as_deref().unwrap_or(""))
}
fn is_success(e: &EventRow) -> bool {
    e.action.as_deref() == Some("auth_success")
}

fn timeline(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let (rows, truncated) = recent(store, p)?;
    const HOUR: i64 = 3600 * 1_000_000;
    let mut buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for e in &rows {
        let b = buckets
            .entry(e.timestamp_us.div_euclid(HOUR) * HOUR)
            .or_default();
        if is_success(e) {
            b.0 += 1;
        } else if is_failure(e) {
            b.1 += 1;
        }
    }
    let items: Vec<Value> = buckets
        .into_iter()
        .map(|(hour, (s, f))| json!({ "hour_us": hour, "successes": s, "failures": f }))
        .collect();
    Ok(json!({ "items": items, "truncated": truncated }))
}

fn hosts(store: &Store, p: &Params, stale_after: Duration) -> Result<Value, ApiError> {
    // Past every batch: reads the agents table and no events.
    let stats = store.stats(Some(i64::MAX), i64::MAX, u32::MAX)?;
    let now = now_us();
    let stale_us = i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX);
    let mut items = Vec::new();
    for a in stats.agents {
        if p.host
            .as_ref()
            .is_some_and(|h| a.hostname.as_ref() != Some(h))
        {
            continue;
        }
        let last = match &a.hostname {
            Some(h) => store
                .query(&Filter {
                    host: Some(h.clone()),
                    limit: 1,
                    documents: true,
                    ..Filter::default()
                })?
                .pop(),
            None => None,
        };
        let doc: Option<Value> = last
            .as_ref()
            .and_then(|e| e.doc.as_deref())
            .and_then(|d| serde_json::from_str(d).ok());
        let version = doc
            .as_ref()
            .and_then(|d| d.pointer("/agent/version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        items.push(json!({
            "agent_id": a.agent_id,
            "hostname": a.hostname,
            "agent_version": version,
            "first_seen_us": a.first_seen_us,
            "last_heartbeat_us": a.last_seen_us,
            "last_seq": a.last_seq,
            "last_event_us": last.as_ref().map(|e| e.timestamp_us),
            "last_event_action": last.as_ref().and_then(|e| e.action.clone()),
            "lag_us": last.as_ref().map(|e| a.last_seen_us - e.timestamp_us),
            "stale": now - a.last_seen_us > stale_us,
        }));
    }
    Ok(page(items, p, false))
}

#[derive(Debug, Default, Serialize)]
struct UserRow {
    user: String,
    hosts: BTreeSet<String>,
    sources: BTreeSet<String>,
    /// The source networks (IPv4 /24, IPv6 /64) of the successful logins.
    networks: BTreeSet<String>,
    first_seen_us: i64,
    last_seen_us: i64,
    successes: u64,
    failures: u64,
    sudo: u64,
}

/// The /24 (IPv4) or /64 (IPv6) network an address is in.
fn network(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            Some(format!("{x}.{y}.{z}.0/24"))
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            Some(format!("{net}/64"))
        }
    }
}

fn users(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let (rows, truncated) = recent(store, p)?;
    let mut by: BTreeMap<String, UserRow> = BTreeMap::new();
    for e in &rows {
        let Some(u) = &e.user else { continue };
        if ALERT_ACTIONS.contains(&e.action.as_deref().unwrap_or("")) {
            continue;
        }
        let r = by.entry(u.clone()).or_insert_with(|| UserRow {
            user: u.clone(),
            first_seen_us: e.timestamp_us,
            ..UserRow::default()
        });
        r.first_seen_us = r.first_seen_us.min(e.timestamp_us);
        r.last_seen_us = r.last_seen_us.max(e.timestamp_us);
        if is_success(e) {
            r.successes += 1;
            r.hosts.extend(e.host.clone());
            r.sources.extend(e.source_ip.clone());
            r.networks.extend(e.source_ip.as_deref().and_then(network));
        } else if is_failure(e) {
            r.failures += 1;
        } else if matches!(e.action.as_deref(), Some("sudo" | "su")) {
            r.sudo += 1;
        }
    }
    let mut items: Vec<UserRow> = by.into_values().collect();
    items.sort_by_key(|u| std::cmp::Reverse(u.last_seen_us));
    Ok(page(items, p, truncated))
}

#[derive(Debug, Default, Serialize)]
struct SourceRow {
    source_ip: String,
    hosts: BTreeSet<String>,
    users: BTreeSet<String>,
    successes: u64,
    failures: u64,
    first_seen_us: i64,
    last_seen_us: i64,
}

fn sources(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let (rows, truncated) = recent(store, p)?;
    let mut by: BTreeMap<String, SourceRow> = BTreeMap::new();
    for e in &rows {
        let Some(ip) = &e.source_ip else { continue };
        if ALERT_ACTIONS.contains(&e.action.as_deref().unwrap_or("")) {
            continue;
        }
        let r = by.entry(ip.clone()).or_insert_with(|| SourceRow {
            source_ip: ip.clone(),
            first_seen_us: e.timestamp_us,
            ..SourceRow::default()
        });
        r.first_seen_us = r.first_seen_us.min(e.timestamp_us);
        r.last_seen_us = r.last_seen_us.max(e.timestamp_us);
        r.hosts.extend(e.host.clone());
        r.users.extend(e.user.clone());
        if is_success(e) {
            r.successes += 1;
        } else if is_failure(e) {
            r.failures += 1;
        }
    }
    let mut items: Vec<SourceRow> = by.into_values().collect();
    items.sort_by_key(|s| std::cmp::Reverse(s.failures + s.successes));
    Ok(page(items, p, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_of_addresses() {
        assert_eq!(network("203.0.113.7").as_deref(), Some("203.0.113.0/24"));
        assert_eq!(
            network("2001:db8:1:2:3::9").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(network("not an address"), None);
    }

    #[test]
    fn page_size_is_capped() {
        let p = params("limit=100000").unwrap();
        assert_eq!(p.limit, MAX_PAGE);
        let p = params("limit=0").unwrap();
        assert_eq!(p.limit, 1);
        assert!(params("limit=x").is_err());
        let p = params("since=2026-11-28T08:00:00Z&host=a%20b").unwrap();
        assert_eq!(p.host.as_deref(), Some("a b"));
        assert!(p.since.is_some());
    }
}
