//! Alerts in the store: the fleet engine ([`crate::fleet`]) run on every committed batch, the
//! fleet alerts it raises kept as ECS documents, an index of the agents' own (edge) alerts, and
//! the listing behind `authtrail-collector alerts`.
//!
//! **Where it runs.** On a thread of its own ([`AlertsThread`]) with its own connection to the
//! store, woken by the store's writer after each group of batches has committed (and at least
//! every [`TICK`]): detection costs the writer, the one thread every batch passes through,
//! nothing but a wake-up, and an agent's 200 never waits for it. It reads back the batches
//! above its mark (`batches.id`), in commit order: their event rows (already encoded by the
//! decoding threads), and the body only of a batch that holds an edge alert (for its severity).
//! Heartbeats count as contacts for the silence rule.
//!
//! **What is written, and when.** Fleet alerts (one row per [`FleetAlert::key`], replaced as
//! the attack grows) and edge-alert index entries go to the `alerts` table in one transaction
//! with the `alerts_upto` mark in `meta`, at most once per [`FLUSH_INTERVAL`] while alerts wait
//! (else every [`FLUSH_BATCHES`] batches, or after a [`TICK`] without batches): a commit per
//! group would double the store's fsyncs, and the writer's commits wait behind each one (SQLite
//! has one write lock). `alerts` reads the batches above the mark directly,
//! so an edge alert is listed as soon as its batch is stored.
//!
//! **Across restarts: the engine's state is kept, not rebuilt.** The first-login rule needs
//! every (user, host) pair the fleet ever saw; rebuilding that at each start means reading the
//! whole store, a cost that grows with it. Instead [`Engine::save`]'s bytes (bounded, see
//! [`crate::fleet`]) are written with their batch mark (`fleet_state`) at most every
//! [`STATE_SAVE_INTERVAL`] and at a clean stop; at start the engine is restored and the batches
//! above that mark are replayed through it. A replayed attack has the same key (rule, subject,
//! start, all from the events), and its row is replaced, never duplicated. A store without
//! saved state (new, or from an older collector) starts a fresh engine at its newest batch:
//! history is not replayed, and the first-login rule learns from then on.
//!
//! **One incident, one alert.** Each edge alert indexed is offered to a [`Fold`]: a repeat of
//! a head another host raised (see [`crate::fold`]) gets no row, and its head's row carries an
//! overlay (`related.hosts`, `authtrail.folded`) that [`list`] merges into the agent's
//! document. The fold's state is written with the rows and the mark (`alert_fold`).
//!
//! Tables (their own, beside the store's; created on open, no schema version change):
//! `alerts (key PRIMARY KEY, time, severity, batch, line_start, line_end, doc)`, where an edge
//! alert points into its batch's body (its `doc`, when set, is the fold's overlay) and a fleet
//! alert carries its document; `fleet_state`; `alert_fold (id = 1, state)`.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use serde_json::{Value, json};

use crate::fleet::{Engine, FleetAlert, FleetConfig, FleetEvent, HostRef};
use crate::fold::{EdgeAlert, Fold, Verdict};
use crate::rows::{self, Rows};
use crate::store::{Store, StoreError};

/// Longest fleet alerts wait in memory before they are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Batches read past the written mark before the mark is written even without alerts.
pub(crate) const FLUSH_BATCHES: i64 = 256;
/// Least time between two saves of the engine's state.
pub(crate) const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the alerts thread, when not woken, looks at the clock (silence rule) and writes
/// what waits.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// Batches read from the store at a time when catching up.
const CATCH_UP_BATCHES: i64 = 64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    key        TEXT PRIMARY KEY,
    time       INTEGER NOT NULL,
    severity   INTEGER NOT NULL,
    batch      INTEGER,
    line_start INTEGER,
    line_end   INTEGER,
    doc        TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time);
CREATE TABLE IF NOT EXISTS alert_fold (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    upto  INTEGER NOT NULL,
    state BLOB NOT NULL
);
";

/// The collector as `observer` of its fleet alerts.
#[derive(Debug, Clone)]
struct Observer {
    hostname: Option<String>,
}

impl Observer {
    fn here() -> Observer {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        Observer { hostname }
    }
}

fn rfc3339(us: i64) -> String {
    crate::report::time(us)
}

/// A fleet alert as its ECS document: `event.kind = alert`, `rule.id`/`rule.name`,
/// `event.severity`, `message`, `event.start`/`event.end`, `observer` (the collector),
/// `related.hosts`/`related.user`/`related.ip`, counts and evidence under `authtrail`.
fn document(alert: &FleetAlert, observer: &Observer) -> String {
    let mut doc = json!({
        "@timestamp": rfc3339(alert.end_us),
        "event": {
            "kind": "alert",
            "category": [if alert.rule == crate::fleet::FleetRule::AgentSilent { "host" } else { "authentication" }],
            "action": alert.rule.id(),
            "outcome": alert.rule.outcome(),
            "severity": alert.severity(),
            "start": rfc3339(alert.start_us),
            "end": rfc3339(alert.end_us),
            "id": alert.key,
            "dataset": "authtrail.fleet",
        },
        "rule": { "id": alert.rule.id(), "name": alert.rule.name(), "category": "fleet" },
        "message": alert.message(),
        "observer": {
            "type": "collector",
            "product": "authtrail-collector",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "related": {
            "hosts": alert.hosts.iter().map(HostRef::label).collect::<Vec<_>>(),
        },
        "authtrail": {
            "count": alert.count,
            "hosts": alert.hosts_total,
            "agents": alert.hosts.iter().map(|h| h.agent.as_str()).collect::<Vec<_>>(),
            "detected": rfc3339(alert.fired_us),
            "evidence": alert.evidence.iter().map(|e| {
                let mut v = json!({
                    "@timestamp": rfc3339(e.time_us),
                    "agent": { "id": e.host.agent },
                    "event": { "action": e.action },
                });
                if let Some(h) = &e.host.hostname { v["host"] = json!({ "hostname": h }); }
                if let Some(u) = &e.user { v["user"] = json!({ "name": u }); }
                if let Some(s) = &e.source { v["source"] = json!({ "ip": s }); }
                v
            }).collect::<Vec<_>>(),
        },
    });
    if let Some(h) = &observer.hostname {
        doc["observer"]["hostname"] = json!(h);
    }
    if !alert.users.is_empty() {
        doc["related"]["user"] = json!(alert.users);
    }
    if !alert.sources.is_empty() {
        doc["related"]["ip"] = json!(alert.sources);
    }
    if alert.more_listed {
        doc["authtrail"]["more_listed"] = json!(true);
    }
    if alert.rule == crate::fleet::FleetRule::FirstLogin {
        doc["authtrail"]["user_hosts_before"] = json!(alert.hosts_before);
    }
    if let Some(u) = &alert.user {
        doc["user"] = json!({ "name": u });
    }
    if let Some(s) = &alert.source {
        doc["source"] = json!({ "ip": s });
    }
    if let Some(h) = &alert.host {
        doc["agent"] = json!({ "id": h.agent });
        if let Some(name) = &h.hostname {
            doc["host"] = json!({ "hostname": name });
        }
    }
    doc.to_string()
}

/// One row to write to `alerts`.
#[derive(Debug, Clone)]
enum Pending {
    Edge {
        time: i64,
        severity: i64,
        batch: i64,
        line: (i64, i64),
        /// What the fold adds to the agent's document (`crate::fold`).
        overlay: Option<String>,
    },
    /// A new overlay for an edge alert already written (a repeat was folded into it), and
    /// the severity it is now listed at.
    Overlay { doc: String, severity: i64 },
    Fleet {
        time: i64,
        severity: i64,
        doc: String,
    },
}

/// The fleet engine and what it has not written yet (run by [`AlertsThread`]).
#[derive(Debug)]
pub struct Alerts {
    engine: Option<Engine>,
    observer: Observer,
    /// Batches read (engine and edge index) up to this id.
    upto: i64,
    /// `alerts_upto` as written.
    written_upto: i64,
    /// The saved state's mark.
    state_upto: i64,
    pending: HashMap<String, Pending>,
    /// Edge alerts of one incident on several hosts, folded into the first.
    fold: Fold,
    last_flush: Instant,
    last_save: Instant,
    last_tick: Instant,
}

fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Alerts {
    /// Creates the tables if needed, restores the engine (or starts one), and replays the
    /// batches stored since its state was saved. `now_us` is the collector's clock.
    pub fn open(
        store: &mut Store,
        config: &FleetConfig,
        now_us: i64,
    ) -> Result<Alerts, StoreError> {
        let conn = store.conn_mut();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        let newest: i64 =
            tx.query_row("SELECT coalesce(max(id), 0) FROM batches", [], |r| r.get(0))?;
        let mut written_upto = meta(&tx, "alerts_upto")?;
        let fold_state: Option<Vec<u8>> = tx
            .query_row("SELECT state FROM alert_fold WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        tx.commit()?;
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let (fold_window, memory) = (micros(config.fold_window), micros(config.network_memory));
        let fold = match fold_state {
            Some(bytes) => Fold::restore(&bytes, fold_window, memory).unwrap_or_else(|| {
                eprintln!(
                    "authtrail-collector: the saved alert fold is of another version or \
                     damaged; repeated edge alerts are folded afresh"
                );
                Fold::new(fold_window, memory)
            }),
            None => Fold::new(fold_window, memory),
        };
        let mut me = Alerts {
            engine: None,
            observer: Observer::here(),
            upto: 0,
            written_upto: 0,
            state_upto: 0,
            pending: HashMap::new(),
            fold,
            last_flush: Instant::now(),
            last_save: Instant::now(),
            last_tick: Instant::now(),
        };
        if written_upto.is_none() {
            // A store that never had this table: index its edge alerts once (no engine).
            me.read_batches(conn, newest)?;
            me.flush(conn, false)?;
            written_upto = Some(newest);
        }
        let written_upto = written_upto.unwrap_or(newest);
        me.written_upto = written_upto;
        let saved: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT upto, state FROM fleet_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if config.enabled {
            // (engine, the batch its state covers, whether that state is saved)
            let (mut engine, upto, saved) = match saved {
                Some((upto, bytes)) => match Engine::restore(config.clone(), &bytes) {
                    Ok(engine) => (engine, upto, true),
                    Err(e) => {
                        eprintln!(
                            "authtrail-collector: {e}; the fleet detections start afresh from \
                             the newest batch"
                        );
                        (Engine::new(config.clone()), newest, false)
                    }
                },
                None => (Engine::new(config.clone()), newest, false),
            };
            engine.resume(now_us);
            me.engine = Some(engine);
            me.upto = upto.min(written_upto);
            // A fresh engine is saved at once (below), so the next start replays from here.
            me.state_upto = if saved { me.upto } else { -1 };
        } else {
            me.upto = written_upto;
        }
        // Replay (and index what the last run had not written).
        me.read_batches(conn, newest)?;
        me.flush(conn, true)?;
        Ok(me)
    }

    /// Reads the batches above the mark up to `last` (inclusive) through the engine and the
    /// edge index.
    fn read_batches(&mut self, conn: &Connection, last: i64) -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(
            "SELECT b.id, b.received_at, a.agent_id, a.hostname, b.rows FROM batches b \
             JOIN agents a ON a.id = b.agent WHERE b.id > ?1 AND b.id <= ?2 ORDER BY b.id \
             LIMIT ?3",
        )?;
        while self.upto < last {
            let mut batches = stmt.query(params![self.upto, last, CATCH_UP_BATCHES])?;
            let mut any = false;
            while let Some(b) = batches.next()? {
                any = true;
                let (id, received, agent): (i64, i64, String) = (b.get(0)?, b.get(1)?, b.get(2)?);
                let hostname: Option<String> = b.get(3)?;
                let bytes: Option<Vec<u8>> = b.get(4)?;
                if let Some(engine) = &mut self.engine {
                    engine.contact(&agent, hostname.as_deref(), received);
                }
                if let Some(bytes) = bytes {
                    let rows = Rows::decode(&bytes).map_err(|e| StoreError::Corrupt {
                        batch: id,
                        reason: e.to_string(),
                    })?;
                    self.read_rows(conn, id, &agent, hostname.as_deref(), &rows)?;
                }
                self.upto = id;
            }
            if !any {
                self.upto = last;
            }
        }
        Ok(())
    }

    /// True when alerts wait to be written (edge index entries, or fleet alerts the engine
    /// raised or grew; those are taken and rendered only when written, once however many
    /// batches grew them).
    fn waiting(&self) -> bool {
        !self.pending.is_empty()
            || self.fold.is_dirty()
            || self.engine.as_ref().is_some_and(Engine::has_alerts)
    }

    fn read_rows(
        &mut self,
        conn: &Connection,
        batch: i64,
        agent: &str,
        hostname: Option<&str>,
        rows: &Rows<'_>,
    ) -> Result<(), StoreError> {
        let code = |v: &str| rows.code(v).unwrap_or(u32::MAX);
        let alert = code("alert");
        let wanted = [
            code("auth_success"),
            code("auth_failure"),
            code("invalid_user"),
        ];
        let (sudo, success) = (code("sudo"), code("success"));
        let mut body: Option<Vec<u8>> = None;
        for (i, r) in rows.rows.iter().enumerate() {
            let c = &r.columns;
            if c[rows::KIND] == alert {
                let line = (r.line_start as i64, (r.line_start + r.line_len) as i64);
                if body.is_none() {
                    body = Some(load_body(conn, batch)?);
                }
                let doc = body
                    .as_deref()
                    .and_then(|b| b.get(line.0 as usize..line.1 as usize))
                    .and_then(|doc| serde_json::from_slice::<Value>(doc).ok())
                    .unwrap_or(Value::Null);
                let severity = doc["event"]["severity"].as_i64().unwrap_or(0);
                let key = format!("edge:{batch}:{i}");
                let time = rows.time(r);
                let evidence: Vec<u64> = doc["authtrail"]["evidence"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                let verdict = self.fold.offer(&EdgeAlert {
                    key: &key,
                    pos: (batch, i as i64),
                    rule: doc["rule"]["id"]
                        .as_str()
                        .or_else(|| doc["event"]["action"].as_str())
                        .unwrap_or(""),
                    user: doc["user"]["name"].as_str(),
                    source: doc["source"]["ip"].as_str().and_then(|s| s.parse().ok()),
                    agent,
                    hostname: doc["host"]["hostname"].as_str().or(hostname),
                    time_us: time,
                    severity,
                    evidence: &evidence,
                    message: doc["message"].as_str(),
                });
                match verdict {
                    Verdict::Head { overlay } => {
                        self.pending.insert(
                            key,
                            Pending::Edge {
                                time,
                                severity,
                                batch,
                                line,
                                overlay: overlay.map(|o| o.to_string()),
                            },
                        );
                    }
                    Verdict::Folded {
                        into,
                        overlay,
                        severity: listed,
                    } => match self.pending.get_mut(&into) {
                        Some(Pending::Edge {
                            overlay: o,
                            severity,
                            ..
                        }) => {
                            *o = Some(overlay.to_string());
                            *severity = (*severity).max(listed);
                        }
                        _ => {
                            let doc = overlay.to_string();
                            let severity = listed;
                            self.pending
                                .insert(into, Pending::Overlay { doc, severity });
                        }
                    },
                    Verdict::Known => {}
                }
                continue;
            }
            if c[rows::ACTION] == wanted[0] {
                let source = rows.text(c[rows::SOURCE_IP]).and_then(|s| s.parse().ok());
                if let (Some(user), Some(source)) = (rows.text(c[rows::USER]), source) {
                    self.fold.login(user, source, agent, rows.time(r));
                }
            } else if c[rows::ACTION] == sudo
                && c[rows::OUTCOME] == success
                && let Some(user) = rows.text(c[rows::USER])
            {
                self.fold.sudo(user, agent, rows.time(r));
            }
            let Some(engine) = &mut self.engine else {
                continue;
            };
            if !wanted.contains(&c[rows::ACTION]) {
                continue;
            }
            let text = |column| rows.text(c[column]);
            engine.observe(&FleetEvent {
                time_us: rows.time(r),
                agent,
                hostname: text(rows::HOST),
                user: text(rows::USER),
                source: text(rows::SOURCE_IP),
                action: text(rows::ACTION).unwrap_or(""),
                outcome: text(rows::OUTCOME),
            });
        }
        Ok(())
    }

    /// Writes the waiting rows and the mark in one transaction; with `save`, the engine's state
    /// too, marked with the same batch (the state covers exactly the batches up to its mark,
    /// so a replay from there counts nothing twice).
    fn flush(&mut self, conn: &mut Connection, save: bool) -> Result<(), StoreError> {
        let save = save && self.engine.is_some() && self.upto > self.state_upto;
        if !self.waiting() && self.upto == self.written_upto && !save {
            return Ok(());
        }
        if let Some(engine) = &mut self.engine {
            for alert in engine.take_alerts() {
                self.pending.insert(
                    alert.key.clone(),
                    Pending::Fleet {
                        time: alert.end_us,
                        severity: i64::from(alert.severity()),
                        doc: document(&alert, &self.observer),
                    },
                );
            }
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO alerts (key, time, severity, batch, line_start, line_end, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO UPDATE SET \
                 time = excluded.time, severity = excluded.severity, doc = excluded.doc",
            )?;
            for (key, p) in &self.pending {
                match p {
                    Pending::Edge {
                        time,
                        severity,
                        batch,
                        line,
                        overlay,
                    } => {
                        put.execute(params![key, time, severity, batch, line.0, line.1, overlay])?
                    }
                    Pending::Overlay { doc, severity } => tx
                        .prepare_cached(
                            "UPDATE alerts SET doc = ?2, severity = max(severity, ?3) \
                             WHERE key = ?1",
                        )?
                        .execute(params![key, doc, severity])?,
                    Pending::Fleet {
                        time,
                        severity,
                        doc,
                    } => put.execute(params![
                        key,
                        time,
                        severity,
                        None::<i64>,
                        None::<i64>,
                        None::<i64>,
                        doc
                    ])?,
                };
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('alerts_upto', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                [self.upto],
            )?;
            if self.fold.is_dirty() {
                tx.execute(
                    "INSERT INTO alert_fold (id, state) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                    [self.fold.save()],
                )?;
            }
            if let Some(engine) = self.engine.as_ref().filter(|_| save) {
                tx.execute(
                    "INSERT INTO fleet_state (id, upto, state) VALUES (1, ?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET upto = excluded.upto, state = excluded.state",
                    params![self.upto, engine.save()],
                )?;
            }
        }
        tx.commit()?;
        self.pending.clear();
        self.written_upto = self.upto;
        self.last_flush = Instant::now();
        if save {
            self.state_upto = self.upto;
            self.last_save = Instant::now();
        }
        Ok(())
    }

    /// After a group of batches committed: reads them; writes alerts when due.
    pub fn after_commit(&mut self, store: &mut Store) -> Result<(), StoreError> {
        let conn = store.conn_mut();
        // A writer that is never idle still lets the silence rule look at the clock.
        if self.last_tick.elapsed() >= TICK
            && let Some(engine) = &mut self.engine
        {
            engine.tick(now_us());
            self.last_tick = Instant::now();
        }
        let newest: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM batches", [], |r| r.get(0))?;
        self.read_batches(conn, newest)?;
        let due = (self.waiting() && self.last_flush.elapsed() >= FLUSH_INTERVAL)
            || self.upto - self.written_upto >= FLUSH_BATCHES;
        if due {
            self.flush(conn, false)?;
        }
        self.maybe_save(conn)
    }

    fn maybe_save(&mut self, conn: &mut Connection) -> Result<(), StoreError> {
        if self.last_save.elapsed() >= STATE_SAVE_INTERVAL {
            self.flush(conn, true)?;
        }
        Ok(())
    }

    /// The writer is idle: the silence rule looks at the clock, waiting alerts are written.
    pub(crate) fn idle(&mut self, store: &mut Store) -> Result<(), StoreError> {
        self.idle_at(store, now_us())
    }

    /// [`Alerts::idle`] at collector time `now_us`.
    pub(crate) fn idle_at(&mut self, store: &mut Store, now_us: i64) -> Result<(), StoreError> {
        let conn = store.conn_mut();
        if let Some(engine) = &mut self.engine {
            engine.tick(now_us);
            self.last_tick = Instant::now();
        }
        self.read_batches(conn, self.upto)?;
        self.flush(conn, false)?;
        self.maybe_save(conn)
    }

    /// A clean stop: everything written, the state saved.
    pub fn stop(&mut self, store: &mut Store) -> Result<(), StoreError> {
        let conn = store.conn_mut();
        self.flush(conn, true)
    }
}

/// The fleet detections' thread: [`Alerts`] on a store connection of its own.
#[derive(Debug)]
pub struct AlertsThread {
    wake: mpsc::SyncSender<()>,
    handle: thread::JoinHandle<()>,
}

impl AlertsThread {
    /// Starts `alerts` on `store` (a second [`Store`] opened on the same file: its connection
    /// is this thread's alone).
    pub fn spawn(mut alerts: Alerts, mut store: Store) -> std::io::Result<AlertsThread> {
        // One pending wake-up is enough: the thread reads every batch above its mark.
        let (wake, rx) = mpsc::sync_channel::<()>(1);
        let handle = thread::Builder::new()
            .name("fleet-alerts".to_owned())
            .spawn(move || {
                let report = |r: Result<(), StoreError>| {
                    if let Err(e) = r {
                        eprintln!("authtrail-collector: fleet detections: {e}");
                    }
                };
                loop {
                    match rx.recv_timeout(TICK) {
                        Ok(()) => report(alerts.after_commit(&mut store)),
                        Err(mpsc::RecvTimeoutError::Timeout) => report(alerts.idle(&mut store)),
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                report(alerts.after_commit(&mut store));
                report(alerts.stop(&mut store));
            })?;
        Ok(AlertsThread { wake, handle })
    }

    /// Batches were committed: read them soon. Never blocks.
    pub fn notify(&self) {
        let _ = self.wake.try_send(());
    }

    /// Reads what is left, writes everything, saves the state, and ends the thread.
    pub fn stop(self) {
        drop(self.wake);
        let _ = self.handle.join();
    }
}

fn load_body(conn: &Connection, batch: i64) -> Result<Vec<u8>, StoreError> {
    crate::store::stored_ndjson(conn, batch)
}

/// Where an alert comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An agent's detector (one host).
    Edge,
    /// The collector's fleet rules.
    Fleet,
}

/// One alert as `alerts` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// `@timestamp` (the end of its evidence), µs.
    pub time_us: i64,
    /// Edge or fleet.
    pub origin: Origin,
    /// `event.severity`.
    pub severity: i64,
    /// The document as stored (an edge alert exactly as its agent sent it).
    pub doc: Value,
}

impl AlertRow {
    /// `rule.id`, else (older agents) `event.action`.
    pub(crate) fn rule(&self) -> Option<&str> {
        self.doc["rule"]["id"]
            .as_str()
            .or_else(|| self.doc["event"]["action"].as_str())
    }

    /// The sentence: `message`, else (older agents) `event.reason`.
    pub(crate) fn message(&self) -> Option<&str> {
        self.doc["message"]
            .as_str()
            .or_else(|| self.doc["event"]["reason"].as_str())
    }
}

/// What `alerts` selects.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Alerts at or after this time (µs).
    pub since_us: Option<i64>,
    /// Alerts at or before this time (µs), applied in the SQL (before `limit`).
    pub until_us: Option<i64>,
    /// At least this severity.
    pub min_severity: Option<i64>,
    /// At most this many (the newest).
    pub limit: u64,
}

/// Edge and fleet alerts matching `filter`, newest first.
pub(crate) fn list(conn: &Connection, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
    let since = filter.since_us.unwrap_or(i64::MIN);
    let until = filter.until_us.unwrap_or(i64::MAX);
    let min = filter.min_severity.unwrap_or(i64::MIN);
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let has_table: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name = 'alerts'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    let mark = if has_table {
        meta(conn, "alerts_upto")?.unwrap_or(0)
    } else {
        0
    };
    let mut out: Vec<AlertRow> = Vec::new();
    let mut bodies: HashMap<i64, Vec<u8>> = HashMap::new();
    let mut edge = |conn: &Connection,
                    batch: i64,
                    start: i64,
                    end: i64|
     -> Result<Option<Value>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(v) = bodies.entry(batch) {
            v.insert(load_body(conn, batch)?);
        }
        Ok(bodies
            .get(&batch)
            .and_then(|b| b.get(start as usize..end as usize))
            .and_then(|d| serde_json::from_slice(d).ok()))
    };
    if has_table {
        let mut stmt = conn.prepare(
            "SELECT time, severity, batch, line_start, line_end, doc FROM alerts \
             WHERE time >= ?1 AND time <= ?4 AND severity >= ?2 ORDER BY time DESC, key LIMIT ?3",
        )?;
        let found = stmt
            .query_map(params![since, min, limit, until], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (time, severity, batch, start, end, doc) in found {
            let (origin, doc) = match (batch, start, end, doc) {
                (Some(b), Some(s), Some(e), overlay) => {
                    let mut doc = edge(conn, b, s, e)?;
                    // A repeat folded into this alert: the hosts and count it covers.
                    if let (Some(d), Some(o)) = (&mut doc, overlay)
                        && let Ok(o) = serde_json::from_str::<Value>(&o)
                    {
                        crate::fold::merge(d, &o);
                    }
                    (Origin::Edge, doc)
                }
                (_, _, _, Some(d)) => (Origin::Fleet, serde_json::from_str(&d).ok()),
                _ => (Origin::Fleet, None),
            };
            if let Some(doc) = doc {
                out.push(AlertRow {
                    time_us: time,
                    origin,
                    severity,
                    doc,
                });
            }
        }
    }
    // Batches above the mark: their edge alerts are not indexed yet.
    let mut stmt = conn.prepare(
        "SELECT id, rows FROM batches WHERE id > ?1 AND rows IS NOT NULL AND max_time >= ?2",
    )?;
    let mut batches = stmt.query(params![mark, since])?;
    while let Some(b) = batches.next()? {
        let (id, bytes): (i64, Vec<u8>) = (b.get(0)?, b.get(1)?);
        let rows = Rows::decode(&bytes).map_err(|e| StoreError::Corrupt {
            batch: id,
            reason: e.to_string(),
        })?;
        let Some(alert) = rows.code("alert") else {
            continue;
        };
        for r in rows.rows.iter().filter(|r| r.columns[rows::KIND] == alert) {
            let time = rows.time(r);
            if time < since || time > until {
                continue;
            }
            let (s, e) = (r.line_start as i64, (r.line_start + r.line_len) as i64);
            if let Some(doc) = edge(conn, id, s, e)? {
                let severity = doc["event"]["severity"].as_i64().unwrap_or(0);
                if severity >= min {
                    out.push(AlertRow {
                        time_us: time,
                        origin: Origin::Edge,
                        severity,
                        doc,
                    });
                }
            }
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.time_us));
    out.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetRule;
    use crate::ingest::{Encoding, decode};
    use crate::store::Store;
    use uuid::Uuid;

    fn login(ts: &str, host: &str, user: &str, ip: &str) -> String {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"event","action":"auth_success","outcome":"success"}},"host":{{"hostname":"{host}"}},"user":{{"name":"{user}"}},"source":{{"ip":"{ip}","port":22}}}}"#
        )
    }

    /// alice's login a month earlier, from home: the history the lateral-movement rule judges
    /// her later rounds' sources against.
    fn history(s: &mut Store) {
        let home = login("2025-12-01T00:00:00Z", "home", "alice", "192.0.2.1");
        put(s, Uuid::new_v4(), 1, &[home], 1);
    }

    fn put(s: &mut Store, agent: Uuid, seq: i64, lines: &[String], now_us: i64) {
        let b = decode(
            Encoding::Identity,
            lines.join("\n").into_bytes(),
            1 << 20,
            None,
        )
        .unwrap();
        s.insert(agent, seq, &b, now_us).unwrap();
    }

    fn all(s: &Store) -> Vec<AlertRow> {
        s.alerts(&AlertFilter {
            limit: 100,
            ..AlertFilter::default()
        })
        .unwrap()
    }

    fn rule_of(r: &AlertRow) -> &str {
        r.rule().unwrap_or("")
    }

    #[test]
    fn one_stored_alert_per_attack_across_batches_restarts_and_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let config = FleetConfig::default();
        let agents: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        history(&mut s);
        a.after_commit(&mut s).unwrap();
        for (i, agent) in agents.iter().take(3).enumerate() {
            let ts = format!("2026-01-01T00:00:0{i}Z");
            put(
                &mut s,
                *agent,
                1,
                &[login(&ts, &format!("web{i}"), "alice", "10.0.0.5")],
                1,
            );
            a.after_commit(&mut s).unwrap();
        }
        a.idle_at(&mut s, 2).unwrap();
        let rows = all(&s);
        let rules: Vec<&str> = rows.iter().map(rule_of).collect();
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert!(rules.contains(&FleetRule::LateralMovementUser.id()));
        assert!(rules.contains(&FleetRule::LateralMovementSource.id()));
        let user = rows
            .iter()
            .find(|r| rule_of(r) == FleetRule::LateralMovementUser.id())
            .unwrap();
        assert_eq!(user.origin, Origin::Fleet);
        assert_eq!(user.severity, 73);
        assert_eq!(user.doc["observer"]["type"], "collector");
        assert_eq!(user.doc["event"]["kind"], "alert");
        assert_eq!(
            user.doc["rule"]["name"],
            FleetRule::LateralMovementUser.name()
        );
        assert_eq!(
            user.doc["related"]["hosts"],
            json!(["web0", "web1", "web2"])
        );
        assert_eq!(
            user.doc["authtrail"]["evidence"].as_array().unwrap().len(),
            3
        );
        assert_eq!(user.doc["event"]["start"], "2026-01-01T00:00:00Z");
        assert_eq!(user.doc["event"]["end"], "2026-01-01T00:00:02Z");
        // A clean stop and a restart, then the attack goes on: the same alert, grown.
        a.stop(&mut s).unwrap();
        drop(a);
        let mut a = Alerts::open(&mut s, &config, 3).unwrap();
        put(
            &mut s,
            agents[3],
            1,
            &[login("2026-01-01T00:00:05Z", "web3", "alice", "10.0.0.5")],
            4,
        );
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, 5).unwrap();
        // A crash: the next batch is read, its alert update never written.
        put(
            &mut s,
            agents[4],
            1,
            &[login("2026-01-01T00:00:06Z", "web4", "alice", "10.0.0.5")],
            6,
        );
        a.after_commit(&mut s).unwrap();
        drop(a);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &config, 7).unwrap();
        a.idle_at(&mut s, 8).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        for r in &rows {
            assert_eq!(r.doc["authtrail"]["hosts"], 5, "{}", r.doc);
            assert_eq!(r.doc["authtrail"]["count"], 5, "each login once: {}", r.doc);
            assert_eq!(r.doc["event"]["end"], "2026-01-01T00:00:06Z");
        }
        // The read-only listing agrees.
        drop(a);
        drop(s);
        assert_eq!(all(&Store::open_read_only(&path).unwrap()).len(), 2);
    }

    #[test]
    fn a_crash_before_the_first_write_loses_no_alert() {
        // A new store: the fresh engine's state is saved at once, so the batches a crash left
        // unread by the engine are replayed at the next start.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let config = FleetConfig::default();
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        history(&mut s);
        for i in 0..3 {
            let ts = format!("2026-01-01T00:00:0{i}Z");
            put(
                &mut s,
                Uuid::new_v4(),
                1,
                &[login(&ts, &format!("web{i}"), "alice", "10.0.0.5")],
                1,
            );
        }
        a.after_commit(&mut s).unwrap();
        drop(a);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let _a = Alerts::open(&mut s, &config, 2).unwrap();
        assert_eq!(all(&s).len(), 2);
    }

    #[test]
    fn edge_alerts_are_listed_at_once_and_once_filtered_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &FleetConfig::default(), 0).unwrap();
        let edge = |ts: &str, sev: u8| {
            format!(
                r#"{{"@timestamp":"{ts}","event":{{"kind":"alert","action":"brute_force","severity":{sev},"reason":"9 failed login attempts from 203.0.113.9 in 40 s","start":"{ts}","end":"{ts}"}},"host":{{"hostname":"web1"}},"source":{{"ip":"203.0.113.9"}},"authtrail":{{"count":9}}}}"#
            )
        };
        let agent = Uuid::new_v4();
        put(
            &mut s,
            agent,
            1,
            &[
                login("2026-01-01T00:00:00Z", "web1", "bob", "10.0.0.1"),
                edge("2026-01-01T00:00:01Z", 47),
                edge("2026-01-01T00:00:03Z", 73),
            ],
            1,
        );
        // Not indexed yet: read from the batch.
        let rows = all(&s);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].message(),
            Some("9 failed login attempts from 203.0.113.9 in 40 s")
        );
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, 2).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 2, "indexed, and not listed twice");
        assert_eq!(rows[0].origin, Origin::Edge);
        assert_eq!(
            rows.iter().map(|r| r.severity).collect::<Vec<_>>(),
            [73, 47],
            "newest first"
        );
        let high = s
            .alerts(&AlertFilter {
                min_severity: Some(73),
                limit: 10,
                ..AlertFilter::default()
            })
            .unwrap();
        assert_eq!(high.len(), 1);
        let since = jiff::Timestamp::from_second(1_767_225_602)
            .unwrap()
            .as_microsecond();
        let recent = s
            .alerts(&AlertFilter {
                since_us: Some(since),
                limit: 10,
                ..AlertFilter::default()
            })
            .unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].severity, 73);
        let older = s
            .alerts(&AlertFilter {
                until_us: Some(since - 1),
                limit: 10,
                ..AlertFilter::default()
            })
            .unwrap();
        assert_eq!(
            older.iter().map(|r| r.severity).collect::<Vec<_>>(),
            [47],
            "an upper bound leaves the newer out, before the limit"
        );
    }

    /// An agent's `first_seen_source` alert for `user` from `ip` on `host`.
    fn first_seen(ts: &str, host: &str, user: &str, ip: &str, sev: u8) -> String {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"alert","action":"first_seen_source","severity":{sev},"start":"{ts}","end":"{ts}"}},"rule":{{"id":"first_seen_source"}},"message":"{user} logged in from {ip}, new for them","host":{{"hostname":"{host}"}},"user":{{"name":"{user}"}},"source":{{"ip":"{ip}"}},"authtrail":{{"count":1}}}}"#
        )
    }

    #[test]
    fn a_new_network_alerted_on_several_hosts_is_listed_once_with_its_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let config = FleetConfig::default();
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        let hosts: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let at = |s: &mut Store, a: &mut Alerts, i: usize, line: String| {
            put(s, hosts[i], 1, &[line], 1);
            a.after_commit(s).unwrap();
            a.idle_at(s, 2).unwrap();
        };
        at(
            &mut s,
            &mut a,
            0,
            first_seen("2026-01-01T08:00:00Z", "web0", "carol", "198.51.7.9", 21),
        );
        // The same /16 on another host an hour later: folded.
        at(
            &mut s,
            &mut a,
            1,
            first_seen("2026-01-01T09:00:00Z", "web1", "carol", "198.51.9.1", 21),
        );
        let rows = all(&s);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].doc["related"]["hosts"], json!(["web0", "web1"]));
        assert_eq!(rows[0].doc["authtrail"]["folded"]["alerts"], 2);
        assert_eq!(
            rows[0].doc["host"]["hostname"], "web0",
            "the first is the one listed"
        );
        assert_eq!(
            rows[0].doc["authtrail"]["count"], 1,
            "the agent's document is kept"
        );
        // A restart keeps the incident: a third host folds into the same alert.
        a.stop(&mut s).unwrap();
        drop(a);
        let mut a = Alerts::open(&mut s, &config, 3).unwrap();
        at(
            &mut s,
            &mut a,
            2,
            first_seen("2026-01-01T10:00:00Z", "web2", "carol", "198.51.0.4", 21),
        );
        // Another network, and a worse alert of the same network: each listed.
        at(
            &mut s,
            &mut a,
            3,
            first_seen("2026-01-01T10:00:01Z", "web3", "carol", "203.0.113.4", 21),
        );
        at(
            &mut s,
            &mut a,
            4,
            first_seen("2026-01-01T10:00:02Z", "web4", "carol", "198.51.7.9", 47),
        );
        let rows = all(&s);
        assert_eq!(rows.len(), 3, "{rows:#?}");
        let head = rows
            .iter()
            .find(|r| r.doc["host"]["hostname"] == "web0")
            .unwrap();
        assert_eq!(
            head.doc["related"]["hosts"],
            json!(["web0", "web1", "web2"])
        );
        assert_eq!(head.doc["authtrail"]["folded"]["alerts"], 3);
        // A folded alert is only not listed: its event is in the store.
        let folded = s
            .query(&crate::store::Filter {
                host: Some("web1".to_owned()),
                action: Some("first_seen_source".to_owned()),
                limit: 10,
                ..crate::store::Filter::default()
            })
            .unwrap();
        assert_eq!(folded.len(), 1, "{folded:#?}");
        // A crash after the fold state was written: the replay counts nothing twice.
        drop(a);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let mut a = Alerts::open(&mut s, &config, 7).unwrap();
        a.idle_at(&mut s, 8).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 3, "{rows:#?}");
        let head = rows
            .iter()
            .find(|r| r.doc["host"]["hostname"] == "web0")
            .unwrap();
        assert_eq!(head.doc["authtrail"]["folded"]["alerts"], 3);
    }

    /// An agent's alert of `rule` citing `evidence`.
    fn edge_alert(ts: &str, rule: &str, user: &str, ip: &str, sev: u8, evidence: &str) -> String {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"alert","action":"{rule}","severity":{sev},"start":"{ts}","end":"{ts}"}},"rule":{{"id":"{rule}"}},"message":"{rule} by {user}.","host":{{"hostname":"web1"}},"user":{{"name":"{user}"}},"source":{{"ip":"{ip}"}},"authtrail":{{"count":1,"evidence":[{evidence}]}}}}"#
        )
    }

    #[test]
    fn a_known_network_is_not_listed_and_a_sudo_after_a_new_one_raises_its_alert() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let config = FleetConfig::default();
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        let (web0, web1) = (Uuid::new_v4(), Uuid::new_v4());
        // dave logs in on web0 from home; his first password login from there on web1, and
        // his sudo after it, are listed by nobody.
        let home = login("2026-01-01T08:00:00Z", "web0", "dave", "198.51.7.9");
        put(&mut s, web0, 1, &[home], 1);
        let lines = [
            edge_alert(
                "2026-01-02T08:00:00Z",
                "first_seen_source",
                "dave",
                "198.51.7.10",
                21,
                "4",
            ),
            edge_alert(
                "2026-01-02T08:05:00Z",
                "privilege_after_login",
                "dave",
                "198.51.7.10",
                47,
                "4,5",
            ),
        ];
        put(&mut s, web1, 1, &lines, 2);
        // carol's new network, then her sudo: one alert, raised to the sudo's severity.
        let lines = [edge_alert(
            "2026-01-02T09:00:00Z",
            "first_seen_source",
            "carol",
            "203.0.113.4",
            21,
            "8",
        )];
        put(&mut s, web1, 2, &lines, 3);
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, 4).unwrap();
        let sudo = edge_alert(
            "2026-01-02T09:10:00Z",
            "privilege_after_login",
            "carol",
            "203.0.113.4",
            47,
            "8,9",
        );
        put(&mut s, web1, 3, &[sudo], 5);
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, 6).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].severity, 47);
        assert_eq!(rows[0].doc["event"]["severity"], 47);
        assert_eq!(
            rows[0].doc["message"],
            "first_seen_source by carol. Then on web1: privilege_after_login by carol."
        );
        let medium = s
            .alerts(&AlertFilter {
                min_severity: Some(47),
                limit: 10,
                ..AlertFilter::default()
            })
            .unwrap();
        assert_eq!(medium.len(), 1, "the stored severity is raised too");
    }

    /// A first sudo on one host by a user the fleet saw use sudo on another is not listed; a
    /// first sudo by a user never seen using sudo is.
    #[test]
    fn a_first_sudo_by_a_user_who_uses_sudo_elsewhere_is_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let config = FleetConfig::default();
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        let (web0, web1) = (Uuid::new_v4(), Uuid::new_v4());
        let sudo = |ts: &str, user: &str, outcome: &str| {
            format!(
                r#"{{"@timestamp":"{ts}","event":{{"kind":"event","category":["process"],"action":"sudo","outcome":"{outcome}"}},"host":{{"hostname":"web0"}},"user":{{"name":"{user}"}},"process":{{"name":"sudo"}}}}"#
            )
        };
        // dave uses sudo on web0; erin only tries (refused).
        let lines = [
            sudo("2026-01-01T08:00:00Z", "dave", "success"),
            sudo("2026-01-01T08:00:00Z", "erin", "failure"),
        ];
        put(&mut s, web0, 1, &lines, 1);
        let first_sudo = |ts: &str, user: &str| {
            format!(
                r#"{{"@timestamp":"{ts}","event":{{"kind":"alert","action":"first_sudo","severity":21,"start":"{ts}","end":"{ts}"}},"rule":{{"id":"first_sudo"}},"message":"{user} used sudo for the first time on this host.","host":{{"hostname":"web1"}},"user":{{"name":"{user}"}},"authtrail":{{"count":1,"evidence":[7]}}}}"#
            )
        };
        let lines = [
            first_sudo("2026-01-02T08:00:00Z", "dave"),
            first_sudo("2026-01-02T08:00:00Z", "erin"),
        ];
        put(&mut s, web1, 1, &lines, 2);
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, 3).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].doc["user"]["name"], "erin");
    }

    #[test]
    fn a_silent_agent_is_stored_once_and_its_return_updates_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let config = FleetConfig::default();
        let quiet = config.silent_after.as_micros() as i64;
        let mut a = Alerts::open(&mut s, &config, 0).unwrap();
        let (beats, stops) = (Uuid::new_v4(), Uuid::new_v4());
        put(
            &mut s,
            stops,
            1,
            &[login("2026-01-01T00:00:00Z", "web2", "bob", "10.0.0.1")],
            0,
        );
        let mut seq = 0;
        let mut now = 0;
        while now <= 2 * quiet {
            seq += 1;
            put(&mut s, beats, seq, &[], now);
            a.after_commit(&mut s).unwrap();
            a.idle_at(&mut s, now).unwrap();
            now += 60_000_000;
        }
        let rows = all(&s);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rule_of(&rows[0]), FleetRule::AgentSilent.id());
        assert_eq!(rows[0].doc["host"]["hostname"], "web2");
        assert_eq!(rows[0].doc["agent"]["id"], stops.to_string());
        put(&mut s, stops, 2, &[], now);
        a.after_commit(&mut s).unwrap();
        a.idle_at(&mut s, now).unwrap();
        let rows = all(&s);
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0].message().unwrap().contains("came back"),
            "{:?}",
            rows[0].message()
        );
    }
}
