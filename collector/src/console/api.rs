//! `/api/v1/...`: the console's JSON answers, each built from [`Store::query`] with a bounded
//! `limit`, so one request reads at most [`MAX_SCAN_EVENTS`] events whatever the store holds.
//!
//! Parameters (query string, all optional): `host`, `user`, `source_ip`, `action`, `since` and
//! `until` (RFC 3339 or µs since the epoch; both bound the batches read, in SQL), `limit`
//! (capped at [`MAX_PAGE`]), `offset`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::alerts::{AlertFilter, Origin};
use crate::store::{EventRow, Filter, Store, StoreError};

/// Most rows in one page.
pub const MAX_PAGE: usize = 200;
/// Rows in a page when `limit` is not given.
pub(crate) const DEFAULT_PAGE: usize = 50;
/// Most events one request reads from the store (its cost cap).
pub const MAX_SCAN_EVENTS: u64 = 20_000;
/// Alerts (edge and fleet) one request reads.
pub const MAX_SCAN_ALERTS: u64 = 2_000;
/// Evidence and follow-up events returned with an alert group.
pub(crate) const MAX_EVIDENCE: usize = 200;
/// Alerts of one rule, host, address and user closer than this are one attack (one row).
pub(crate) const GROUP_GAP_US: i64 = 3600 * 1_000_000;
/// Default reach back of the aggregates (timeline, users, sources): 7 days.
pub(crate) const DEFAULT_SPAN_US: i64 = 7 * 24 * 3600 * 1_000_000;
/// How far after an alert "what the user did next" looks: 24 h.
pub(crate) const NEXT_SPAN_US: i64 = 24 * 3600 * 1_000_000;

/// The agents' alert rules, whose events the aggregates and the evidence leave out.
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

/// The wall clock, µs since the epoch.
pub(crate) fn now_us() -> i64 {
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
            until_us: self.until,
            user: self.user.clone(),
            source_ip: self.source_ip.clone(),
            host: self.host.clone(),
            action: self.action.clone(),
            limit,
            documents,
        }
    }
}

/// One event as the API shows it: the stored columns ([`crate::rows::EventRef`]'s JSON) and
/// the document.
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    #[serde(flatten)]
    event: crate::rows::EventRef<'a>,
    /// The event as the agent sent it (its `message` is the raw log line when shipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<Value>,
}

fn event_json(e: &EventRow) -> EventJson<'_> {
    EventJson {
        event: e.as_ref(),
        doc: e.doc.as_deref().and_then(|d| serde_json::from_str(d).ok()),
    }
}

/// Answers `path` (under `/api/v1/`) with a JSON body.
pub(crate) fn answer(
    store: &Store,
    path: &str,
    query: &str,
    stale_after: Duration,
    backlogs: &std::sync::Mutex<super::Backlogs>,
) -> Result<String, ApiError> {
    let p = params(query)?;
    let v = match path {
        "/api/v1/alerts" => alerts(store, &p)?,
        "/api/v1/alerts/evidence" => evidence(store, &p)?,
        "/api/v1/events" => events(store, &p)?,
        "/api/v1/timeline" => timeline(store, &p)?,
        "/api/v1/hosts" => hosts(store, &p, stale_after, backlogs)?,
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
/// the previous. An edge alert is an agent's (one host); a fleet alert is the collector's
/// (`crate::fleet`: one row per attack already, across hosts).
#[derive(Debug, Serialize)]
struct AlertGroup {
    rule: String,
    /// `edge` or `fleet`.
    origin: &'static str,
    host: Option<String>,
    source_ip: Option<String>,
    user: Option<String>,
    /// The hosts a fleet alert relates (`related.hosts`), at most [`MAX_EVIDENCE`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<String>,
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
    /// A fleet alert's evidence as it cites it (time, agent, host, action, user, source), at
    /// most [`MAX_EVIDENCE`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidence: Vec<Value>,
}

/// (origin, rule, host, source address, user): what makes alerts one attack.
type GroupKey = (
    &'static str,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// (time, action, user, source port): an event's identity when its document is fetched.
type EventKey = (i64, Option<String>, Option<String>, Option<u16>);

fn doc_time(doc: &Value, ptr: &str) -> Option<i64> {
    doc.pointer(ptr)?
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

fn doc_str(doc: &Value, ptr: &str) -> Option<String> {
    doc.pointer(ptr).and_then(Value::as_str).map(str::to_owned)
}

/// Whether `want` is the alert's own value at `one` or among its related values at `many`.
fn relates(doc: &Value, want: Option<&str>, one: &str, many: &str) -> bool {
    let Some(want) = want else { return true };
    doc.pointer(one).and_then(Value::as_str) == Some(want)
        || doc
            .pointer(many)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(want)))
}

/// The edge and fleet alerts ([`crate::alerts::list`], the newest [`MAX_SCAN_ALERTS`] between
/// `since` and `until`), grouped per attack, newest first.
fn alerts(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let mut rows = store.alerts(&AlertFilter {
        since_us: p.since,
        until_us: p.until,
        limit: MAX_SCAN_ALERTS,
        ..AlertFilter::default()
    })?;
    let truncated = rows.len() as u64 == MAX_SCAN_ALERTS;
    let mut groups: Vec<AlertGroup> = Vec::new();
    // Oldest first, so each alert joins the group its predecessor opened.
    rows.reverse();
    let mut open: HashMap<GroupKey, usize> = HashMap::new();
    for a in rows {
        let doc = &a.doc;
        let rule = a.rule().unwrap_or("").to_owned();
        if p.action.as_deref().is_some_and(|x| x != rule)
            || !relates(doc, p.host.as_deref(), "/host/hostname", "/related/hosts")
            || !relates(doc, p.user.as_deref(), "/user/name", "/related/user")
            || !relates(doc, p.source_ip.as_deref(), "/source/ip", "/related/ip")
        {
            continue;
        }
        let origin = match a.origin {
            Origin::Edge => "edge",
            Origin::Fleet => "fleet",
        };
        let (host, source_ip, user) = (
            doc_str(doc, "/host/hostname"),
            doc_str(doc, "/source/ip"),
            doc_str(doc, "/user/name"),
        );
        let key = (
            origin,
            rule.clone(),
            host.clone(),
            source_ip.clone(),
            user.clone(),
        );
        let start = doc_time(doc, "/event/start").unwrap_or(a.time_us);
        let severity = u64::try_from(a.severity).unwrap_or(0);
        let reason = a.message().unwrap_or("").to_owned();
        let count = doc
            .pointer("/authtrail/count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let cited = doc.pointer("/authtrail/evidence").and_then(Value::as_array);
        let cites = cited
            .map(|e| e.iter().filter_map(Value::as_u64).collect::<Vec<u64>>())
            .unwrap_or_default();
        let evidence: Vec<Value> = cited
            .map(|e| e.iter().filter(|v| v.is_object()).cloned().collect())
            .unwrap_or_default();
        let hosts: Vec<String> = doc
            .pointer("/related/hosts")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        match open.get(&key).copied() {
            Some(i) if a.time_us - groups[i].end_us <= GROUP_GAP_US => {
                let g = &mut groups[i];
                g.alerts += 1;
                g.attempts = g.attempts.max(count);
                g.severity = g.severity.max(severity);
                g.start_us = g.start_us.min(start);
                g.end_us = a.time_us;
                g.reason = reason;
                for c in cites {
                    if g.cites.len() < MAX_EVIDENCE {
                        g.cites.insert(c);
                    }
                }
                for h in hosts {
                    if g.hosts.len() < MAX_EVIDENCE && !g.hosts.contains(&h) {
                        g.hosts.push(h);
                    }
                }
                let room = MAX_EVIDENCE.saturating_sub(g.evidence.len());
                g.evidence.extend(evidence.into_iter().take(room));
            }
            _ => {
                open.insert(key, groups.len());
                groups.push(AlertGroup {
                    rule,
                    origin,
                    host,
                    source_ip,
                    user,
                    hosts: hosts.into_iter().take(MAX_EVIDENCE).collect(),
                    severity,
                    reason,
                    alerts: 1,
                    attempts: count,
                    start_us: start,
                    end_us: a.time_us,
                    cites: cites.into_iter().take(MAX_EVIDENCE).collect(),
                    evidence: evidence.into_iter().take(MAX_EVIDENCE).collect(),
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

/// Events newest first. Besides `offset`, each page carries a keyset cursor `next`
/// (`{until, offset}`: the time of its oldest event and how many events at that time it and the
/// pages before showed), so a client walks back any distance at the cost of one page each:
/// `until` bounds the batches read in SQL, never after the newest [`MAX_SCAN_EVENTS`].
fn events(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let found = store.query(&p.filter(MAX_SCAN_EVENTS, false))?;
    let truncated = found.len() as u64 == MAX_SCAN_EVENTS;
    let mut rows = found;
    rows.reverse();
    let total = rows.len();
    let end = (p.offset + p.limit).min(total);
    let shown = rows.get(..end).unwrap_or(&[]);
    let cursor = shown
        .last()
        .filter(|_| end < total || truncated)
        .map(|last| {
            let at = last.timestamp_us;
            let same = shown
                .iter()
                .rev()
                .take_while(|e| e.timestamp_us == at)
                .count();
            json!({ "until": at, "offset": same })
        });
    let page = rows.get(p.offset.min(end)..end).unwrap_or(&[]);
    let next = (end < total).then_some(end);
    Ok(json!({
        "items": page.iter().map(event_json).collect::<Vec<_>>(),
        "offset": p.offset,
        "limit": p.limit,
        "total": total,
        "next_offset": next,
        "next": cursor,
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
    Ok((rows, truncated))
}

fn is_failure(e: &EventRow) -> bool {
    FAILURES.contains(&e.action.as_deref().unwrap_or(""))
}
fn is_success(e: &EventRow) -> bool {
    e.action.as_deref() == Some("auth_success")
}

/// The bucket of a timeline over `span_us`: a minute up to [`MINUTE_BUCKETS_UP_TO_US`] (a
/// zoomed hour), ten minutes up to [`TEN_MINUTE_BUCKETS_UP_TO_US`] (a day), else an hour; at
/// most 180 buckets for a zoom, and a week of hours by default.
fn bucket_us(span_us: i64) -> i64 {
    const MINUTE: i64 = 60 * 1_000_000;
    if span_us <= MINUTE_BUCKETS_UP_TO_US {
        MINUTE
    } else if span_us <= TEN_MINUTE_BUCKETS_UP_TO_US {
        10 * MINUTE
    } else {
        60 * MINUTE
    }
}

/// Ranges up to this get one bucket a minute: 3 h.
pub const MINUTE_BUCKETS_UP_TO_US: i64 = 3 * 3600 * 1_000_000;
/// Ranges up to this (and over 3 h) get one bucket per ten minutes: 24 h.
pub const TEN_MINUTE_BUCKETS_UP_TO_US: i64 = 24 * 3600 * 1_000_000;

fn timeline(store: &Store, p: &Params) -> Result<Value, ApiError> {
    let (rows, truncated) = recent(store, p)?;
    let since = p.since.unwrap_or_else(|| now_us() - DEFAULT_SPAN_US);
    let until = p.until.unwrap_or_else(now_us);
    let bucket = bucket_us(until.saturating_sub(since));
    let mut buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for e in &rows {
        let b = buckets
            .entry(e.timestamp_us.div_euclid(bucket) * bucket)
            .or_default();
        if is_success(e) {
            b.0 += 1;
        } else if is_failure(e) {
            b.1 += 1;
        }
    }
    let items: Vec<Value> = buckets
        .into_iter()
        .map(|(start, (s, f))| json!({ "start_us": start, "successes": s, "failures": f }))
        .collect();
    Ok(json!({
        "items": items,
        "bucket_us": bucket,
        "since_us": since,
        "until_us": until,
        "truncated": truncated,
    }))
}

fn hosts(
    store: &Store,
    p: &Params,
    stale_after: Duration,
    backlogs: &std::sync::Mutex<super::Backlogs>,
) -> Result<Value, ApiError> {
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
        let spool = uuid::Uuid::parse_str(&a.agent_id)
            .ok()
            .and_then(|id| backlogs.lock().ok()?.get(&id).copied())
            .map(|(b, at)| {
                json!({
                    "batches": b.batches,
                    "bytes": b.bytes,
                    "lag_ms": b.lag_ms,
                    "reported_us": at,
                })
            });
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
            "spool": spool,
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

    /// A store with `old` events an hour before `new` newer ones (in batches of 5,000).
    fn store_old_and_new(dir: &std::path::Path, old: usize, new: usize) -> (Store, i64) {
        let mut s = Store::open(&dir.join("s.db")).unwrap();
        let old_t = 1_767_225_600_i64;
        let line = |t: i64, i: usize| {
            let ts = jiff::Timestamp::from_second(t).unwrap();
            format!(
                r#"{{"@timestamp":"{ts}","event":{{"kind":"event","action":"auth_failure","outcome":"failure"}},"host":{{"hostname":"h"}},"user":{{"name":"u{}"}},"source":{{"ip":"192.0.2.1","port":{}}}}}"#,
                i % 7,
                1 + i % 60000
            )
        };
        let mut lines: Vec<String> = (0..old).map(|i| line(old_t + (i as i64 % 60), i)).collect();
        lines.extend((0..new).map(|i| line(old_t + 3600 + (i as i64 % 600), i)));
        for (seq, chunk) in lines.chunks(5_000).enumerate() {
            let b = crate::ingest::decode(
                crate::ingest::Encoding::Identity,
                chunk.join("\n").into_bytes(),
                1 << 30,
                None,
            )
            .unwrap();
            s.insert(uuid::Uuid::nil(), seq as i64, &b, 0).unwrap();
        }
        (s, (old_t + 60) * 1_000_000)
    }

    #[test]
    fn a_page_older_than_the_newest_scan_cap_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let (s, old_end) = store_old_and_new(dir.path(), 120, MAX_SCAN_EVENTS as usize + 5_000);
        let get = |q: &str| -> Value {
            let none = std::sync::Mutex::default();
            serde_json::from_str(
                &answer(&s, "/api/v1/events", q, Duration::from_secs(1), &none).unwrap(),
            )
            .unwrap()
        };
        let p = get(&format!("until={old_end}&limit=50"));
        let items = p["items"].as_array().unwrap();
        assert_eq!(items.len(), 50, "{p}");
        assert_eq!(p["total"], 120, "{p}");
        assert!(
            items
                .iter()
                .all(|e| e["timestamp_us"].as_i64().unwrap() <= old_end)
        );
        // Keyset paging: each page's cursor gives the next, and together they tile the 120.
        let mut seen = items.len();
        let mut cursor = p["next"].clone();
        while let Some(c) = cursor.as_object() {
            let q = format!("until={}&offset={}&limit=50", c["until"], c["offset"]);
            let p = get(&q);
            seen += p["items"].as_array().unwrap().len();
            cursor = p["next"].clone();
        }
        assert_eq!(seen, 120);
        // With a user filter (the terms index leads) too.
        let p = get(&format!("until={old_end}&user=u3&limit=200"));
        assert_eq!(p["total"], (0..120).filter(|i| i % 7 == 3).count(), "{p}");
    }

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
