//! The SQLite store: batches (for de-duplication), events, and agents (last contact and host
//! facts), plus the queries behind `query` and `stats`.
//!
//! **Durability:** WAL journal with `synchronous = FULL`: a transaction's commit returns only
//! after the WAL has been fsync'd, so a batch acknowledged with 200 survives a SIGKILL of the
//! collector *and* an OS crash or power cut. (`NORMAL` with WAL would survive a process crash,
//! SIGKILL included, but may lose the last commits on an OS crash or power loss; by then the
//! agent has deleted those batches from its spool on our 200, so they would be lost for good.
//! FULL keeps "acknowledged means stored" true for every kind of crash.) The fsync's cost is
//! paid once per *group* of batches, not per batch: the writer thread takes every batch queued
//! behind the first (up to [`GROUP_MAX_BATCHES`]) and stores them in one transaction, then
//! answers them all after the one commit (if one batch fails, the group is rolled back and each
//! batch gets a transaction of its own). A batch is still stored whole or not at all, and none
//! is answered before the commit that holds it.
//!
//! Times are INTEGER microseconds since the Unix epoch (UTC): exact ordering and range queries,
//! unlike RFC 3339 text whose fractional seconds break lexical order.
//!
//! The schema carries a version in `PRAGMA user_version` ([`SCHEMA_VERSION`]); a store from a
//! newer collector is refused rather than misread.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension as _, TransactionBehavior, params,
};
use uuid::Uuid;

use crate::ingest::Batch;

/// The schema version this collector writes.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another connection's lock (a `query` running beside the
/// server) before failing with "busy" (then 503 for a batch).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most batches the writer stores in one transaction (one commit, one fsync).
pub const GROUP_MAX_BATCHES: usize = 32;

/// SQLite's page cache for the writer, KiB (`PRAGMA cache_size` = minus this). The default
/// 2 MiB does not hold the five indices' working set, and every insert then re-reads pages.
pub const CACHE_KIB: i64 = 32 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1000, about 4 MiB, i.e. a
/// checkpoint every three or four batches; index pages touched by several batches are then
/// copied into the database several times).
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    agent_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,
    host        TEXT,
    kind        TEXT,
    action      TEXT,
    outcome     TEXT,
    user        TEXT,
    target_user TEXT,
    source_ip   TEXT,
    source_port INTEGER,
    process     TEXT,
    method      TEXT,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_user ON events (user);
CREATE INDEX IF NOT EXISTS events_source_ip ON events (source_ip);
CREATE INDEX IF NOT EXISTS events_host ON events (host);
CREATE INDEX IF NOT EXISTS events_action ON events (action);
CREATE TABLE IF NOT EXISTS agents (
    agent_id   TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    hostname   TEXT,
    last_seq   INTEGER,
    facts      TEXT
);
";

/// A store failure. [`StoreError::is_busy`] ones are worth retrying (503).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite said no.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer collector.
    #[error("store schema version {found} is newer than this collector's ({SCHEMA_VERSION})")]
    NewerSchema {
        /// `PRAGMA user_version`.
        found: i64,
    },
    /// The writer thread is gone (shutting down).
    #[error("the store's writer has stopped")]
    WriterGone,
}

impl StoreError {
    /// Locked, busy, or out of disk: transient, so the agent should retry later.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull
            ),
            StoreError::WriterGone => true,
            _ => false,
        }
    }
}

/// What happened to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, with this many events.
    Stored {
        /// Events stored.
        events: usize,
    },
    /// (agent, seq) was already stored; nothing was written but the agent's last contact.
    Duplicate,
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

fn check_version(conn: &Connection) -> Result<i64, StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found });
    }
    Ok(found)
}

impl Store {
    /// Opens (creating if needed) the store for writing: WAL, `synchronous = FULL`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        if check_version(&conn)? < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Store { conn })
    }

    /// Opens an existing store read-only (for `query` and `stats`).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_version(&conn)?;
        Ok(Store { conn })
    }

    /// Stores a batch in one transaction, unless (agent, seq) is already stored. Either way the
    /// agent's last contact becomes `now_us`. Returns only after the commit (fsync'd).
    pub fn insert(
        &mut self,
        agent: Uuid,
        seq: i64,
        batch: &Batch,
        now_us: i64,
    ) -> Result<Outcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = insert_in(&tx, agent, seq, batch, now_us)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Stores several batches in one transaction (one commit, one fsync), each as
    /// [`Store::insert`] would. If any of them fails, the group is rolled back and each batch
    /// is stored in a transaction of its own, so one bad batch costs the others nothing. The
    /// results are in the order of `batches`, and all of them are final (committed or not)
    /// when this returns.
    pub fn insert_group(
        &mut self,
        batches: &[(Uuid, i64, &Batch, i64)],
    ) -> Vec<Result<Outcome, StoreError>> {
        if batches.len() > 1 {
            let grouped = (|| {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut outcomes = Vec::with_capacity(batches.len());
                for &(agent, seq, batch, now_us) in batches {
                    outcomes.push(insert_in(&tx, agent, seq, batch, now_us)?);
                }
                tx.commit()?;
                Ok::<_, StoreError>(outcomes)
            })();
            if let Ok(outcomes) = grouped {
                return outcomes.into_iter().map(Ok).collect();
            }
            // The transaction was rolled back when it dropped: nothing of the group is stored.
        }
        batches
            .iter()
            .map(|&(agent, seq, batch, now_us)| self.insert(agent, seq, batch, now_us))
            .collect()
    }

    /// Whether (agent, seq) is stored.
    pub fn has_batch(&self, agent: Uuid, seq: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM batches WHERE agent_id = ?1 AND seq = ?2",
                params![agent.to_string(), seq],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Events matching `filter`, oldest first (the newest `filter.limit` of them).
    pub fn query(&self, filter: &Filter) -> Result<Vec<EventRow>, StoreError> {
        let mut sql = String::from(
            "SELECT timestamp, host, action, outcome, user, target_user, source_ip, source_port, \
             process, method, doc FROM events WHERE 1 = 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(since) = filter.since_us {
            args.push(since.into());
            sql.push_str(&format!(" AND timestamp >= ?{}", args.len()));
        }
        for (column, value) in [
            ("user", &filter.user),
            ("source_ip", &filter.source_ip),
            ("host", &filter.host),
            ("action", &filter.action),
        ] {
            if let Some(v) = value {
                args.push(v.clone().into());
                sql.push_str(&format!(" AND {column} = ?{}", args.len()));
            }
        }
        args.push((filter.limit.min(i64::MAX as u64) as i64).into());
        sql.push_str(&format!(
            " ORDER BY timestamp DESC, id DESC LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(EventRow {
                    timestamp_us: r.get(0)?,
                    host: r.get(1)?,
                    action: r.get(2)?,
                    outcome: r.get(3)?,
                    user: r.get(4)?,
                    target_user: r.get(5)?,
                    source_ip: r.get(6)?,
                    source_port: r.get(7)?,
                    process: r.get(8)?,
                    method: r.get(9)?,
                    doc: r.get(10)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Counts per host and action, every agent, and source addresses that failed against at
    /// least `spread` distinct hosts since `window_start_us`.
    pub fn stats(
        &self,
        since_us: Option<i64>,
        window_start_us: i64,
        spread: u32,
    ) -> Result<Stats, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT host, action, count(*) FROM events WHERE timestamp >= ?1 \
             GROUP BY host, action ORDER BY host, action",
        )?;
        let counts = stmt
            .query_map([since_us.unwrap_or(i64::MIN)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT agent_id, hostname, first_seen, last_seen, last_seq FROM agents \
             ORDER BY hostname, agent_id",
        )?;
        let agents = stmt
            .query_map([], |r| {
                Ok(AgentRow {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    first_seen_us: r.get(2)?,
                    last_seen_us: r.get(3)?,
                    last_seq: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT source_ip, count(DISTINCT host), count(*) FROM events \
             WHERE timestamp >= ?1 AND action IN ('auth_failure', 'invalid_user') \
               AND source_ip IS NOT NULL \
             GROUP BY source_ip HAVING count(DISTINCT host) >= ?2 \
             ORDER BY 2 DESC, 3 DESC, source_ip",
        )?;
        let spread_sources = stmt
            .query_map(params![window_start_us, spread], |r| {
                Ok(SpreadRow {
                    source_ip: r.get(0)?,
                    hosts: r.get::<_, i64>(1)? as u64,
                    failures: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stats {
            counts,
            agents,
            spread_sources,
        })
    }
}

/// The body of [`Store::insert`], inside the caller's transaction.
fn insert_in(
    tx: &rusqlite::Transaction<'_>,
    agent: Uuid,
    seq: i64,
    batch: &Batch,
    now_us: i64,
) -> Result<Outcome, StoreError> {
    let agent = agent.to_string();
    let seen = tx
        .prepare_cached("SELECT 1 FROM batches WHERE agent_id = ?1 AND seq = ?2")?
        .query_row(params![agent, seq], |_| Ok(()))
        .optional()?
        .is_some();
    let outcome = if seen {
        tx.prepare_cached("UPDATE agents SET last_seen = max(last_seen, ?2) WHERE agent_id = ?1")?
            .execute(params![agent, now_us])?;
        Outcome::Duplicate
    } else {
        tx.prepare_cached(
            "INSERT INTO batches (agent_id, seq, received_at, events) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![agent, seq, now_us, batch.events.len() as i64])?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (agent_id, seq, timestamp, host, kind, action, outcome, \
                     user, target_user, source_ip, source_port, process, method, doc) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for e in &batch.events {
                stmt.execute(params![
                    agent,
                    seq,
                    e.timestamp_us,
                    e.host,
                    e.kind,
                    e.action,
                    e.outcome,
                    e.user,
                    e.target_user,
                    e.source_ip,
                    e.source_port,
                    e.process,
                    e.method,
                    e.doc,
                ])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO agents (agent_id, first_seen, last_seen, hostname, last_seq, facts) \
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (agent_id) DO UPDATE SET \
                   last_seen = max(last_seen, excluded.last_seen), \
                   hostname = coalesce(excluded.hostname, hostname), \
                   last_seq = max(coalesce(last_seq, excluded.last_seq), excluded.last_seq), \
                   facts = coalesce(excluded.facts, facts)",
        )?
        .execute(params![
            agent,
            now_us,
            batch.hostname(),
            seq,
            batch.state.as_ref().map(|s| s.doc.as_str()),
        ])?;
        Outcome::Stored {
            events: batch.events.len(),
        }
    };
    Ok(outcome)
}

/// What `query` selects. Every `Some` must match exactly.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// `user.name`.
    pub user: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// `host.hostname`.
    pub host: Option<String>,
    /// `event.action`.
    pub action: Option<String>,
    /// At most this many (the newest).
    pub limit: u64,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The columns of `events`, named as in the schema.
pub struct EventRow {
    pub timestamp_us: i64,
    pub host: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub user: Option<String>,
    pub target_user: Option<String>,
    pub source_ip: Option<String>,
    pub source_port: Option<u16>,
    pub process: Option<String>,
    pub method: Option<String>,
    /// The event as the agent sent it.
    pub doc: String,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The columns of `agents`.
pub struct AgentRow {
    pub agent_id: String,
    pub hostname: Option<String>,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub last_seq: Option<i64>,
}

/// A source address that failed against several hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadRow {
    /// `source.ip`.
    pub source_ip: String,
    /// Distinct `host.hostname`s it failed against.
    pub hosts: u64,
    /// Failures in all.
    pub failures: u64,
}

/// What `stats` shows.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// (host, action, events).
    pub counts: Vec<(Option<String>, Option<String>, u64)>,
    /// Every agent that ever sent a batch.
    pub agents: Vec<AgentRow>,
    /// The fleet-wide detection: failures from one address against several hosts.
    pub spread_sources: Vec<SpreadRow>,
}

/// A batch for the writer thread.
#[derive(Debug)]
struct Job {
    agent: Uuid,
    seq: i64,
    batch: Batch,
    now_us: i64,
    reply: tokio::sync::oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The writer's queue is full (or the writer has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The sending side of the writer thread: the async server hands batches here so that SQLite's
/// blocking commits (fsync) never run on the runtime's threads.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store` with a queue of `capacity` batches. The thread ends
    /// when every [`Writer`] clone is dropped, after the queued batches are stored.
    pub fn spawn(
        mut store: Store,
        capacity: usize,
    ) -> std::io::Result<(Writer, thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let handle = thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || {
                // One commit for the first batch and every one queued behind it.
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < GROUP_MAX_BATCHES {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    let group: Vec<_> = jobs
                        .iter()
                        .map(|j| (j.agent, j.seq, &j.batch, j.now_us))
                        .collect();
                    let results = store.insert_group(&group);
                    drop(group);
                    for (job, result) in jobs.into_iter().zip(results) {
                        // The requester may have gone (client hung up); the batch is stored
                        // anyway and a re-send will be answered "duplicate".
                        let _ = job.reply.send(result);
                    }
                }
            })?;
        Ok((Writer { queue: tx }, handle))
    }

    /// Queues a batch; fails at once when the queue is full.
    pub fn submit(
        &self,
        agent: Uuid,
        seq: i64,
        batch: Batch,
        now_us: i64,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Outcome, StoreError>>, QueueFull> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.queue
            .try_send(Job {
                agent,
                seq,
                batch,
                now_us,
                reply,
            })
            .map_err(|_| QueueFull)?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_ndjson;

    fn batch(lines: &[&str]) -> Batch {
        parse_ndjson(lines.join("\n").as_bytes()).unwrap()
    }

    fn ev(ts: &str, host: &str, action: &str, ip: &str) -> String {
        format!(
            r#"{{"@timestamp":"{ts}","event":{{"kind":"event","action":"{action}","outcome":"failure"}},"host":{{"hostname":"{host}"}},"user":{{"name":"root"}},"source":{{"ip":"{ip}","port":22}}}}"#
        )
    }

    #[test]
    fn duplicate_is_stored_once_and_versions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        let a = Uuid::new_v4();
        let e = ev("2026-01-01T00:00:00Z", "h1", "auth_failure", "10.0.0.1");
        let b = batch(&[&e, &e]);
        assert_eq!(
            s.insert(a, 1, &b, 10).unwrap(),
            Outcome::Stored { events: 2 }
        );
        assert_eq!(s.insert(a, 1, &b, 20).unwrap(), Outcome::Duplicate);
        assert_eq!(
            s.insert(Uuid::new_v4(), 1, &b, 20).unwrap(),
            Outcome::Stored { events: 2 }
        );
        let rows = s
            .query(&Filter {
                limit: 100,
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 4);
        let stats = s.stats(None, 0, 3).unwrap();
        assert_eq!(stats.agents.len(), 2);
        let agent = stats
            .agents
            .iter()
            .find(|r| r.agent_id == a.to_string())
            .unwrap();
        assert_eq!((agent.first_seen_us, agent.last_seen_us), (10, 20));
        assert_eq!(agent.hostname.as_deref(), Some("h1"));
        drop(s);
        // Reopening keeps the data; a newer schema is refused.
        let s = Store::open(&path).unwrap();
        assert!(s.has_batch(a, 1).unwrap());
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NewerSchema { found: 99 })
        ));
        assert!(matches!(
            Store::open_read_only(&path),
            Err(StoreError::NewerSchema { found: 99 })
        ));
    }

    #[test]
    fn query_filters_and_spread_detection() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let lines = [
            ev("2026-01-01T00:00:01Z", "h1", "auth_failure", "203.0.113.9"),
            ev("2026-01-01T00:00:02Z", "h2", "invalid_user", "203.0.113.9"),
            ev("2026-01-01T00:00:03Z", "h3", "auth_failure", "203.0.113.9"),
            ev("2026-01-01T00:00:04Z", "h1", "auth_failure", "198.51.100.1"),
            ev("2026-01-01T00:00:05Z", "h2", "auth_success", "198.51.100.1"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        s.insert(Uuid::new_v4(), 0, &batch(&refs), 0).unwrap();
        let q = |f: Filter| s.query(&Filter { limit: 100, ..f }).unwrap();
        assert_eq!(q(Filter::default()).len(), 5);
        let by_ip = q(Filter {
            source_ip: Some("198.51.100.1".into()),
            ..Filter::default()
        });
        assert_eq!(by_ip.len(), 2);
        assert!(by_ip[0].timestamp_us < by_ip[1].timestamp_us);
        let h1_fail = q(Filter {
            host: Some("h1".into()),
            action: Some("auth_failure".into()),
            ..Filter::default()
        });
        assert_eq!(h1_fail.len(), 2);
        let since = "2026-01-01T00:00:04Z".parse::<jiff::Timestamp>().unwrap();
        let recent = q(Filter {
            since_us: Some(since.as_microsecond()),
            ..Filter::default()
        });
        assert_eq!(recent.len(), 2);
        let newest = s
            .query(&Filter {
                limit: 1,
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(newest[0].action.as_deref(), Some("auth_success"));

        let stats = s.stats(None, 0, 3).unwrap();
        assert_eq!(
            stats.spread_sources,
            vec![SpreadRow {
                source_ip: "203.0.113.9".into(),
                hosts: 3,
                failures: 3
            }]
        );
        let late = since.as_microsecond();
        assert!(s.stats(None, late, 3).unwrap().spread_sources.is_empty());
        assert_eq!(stats.counts.len(), 4, "h1 auth_failure twice is one row");
    }
}
