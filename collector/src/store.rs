//! The SQLite store: batches (for de-duplication) with their events, and agents (last contact
//! and host facts), plus the queries behind `query` and `stats`.
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
//! **Layout (schema 4):** a batch's body is kept once, zstd-compressed (as the agent sent it
//! when it came as zstd), in `batches.body`; beside it, in `batches.rows`, the columns `query`
//! and `stats` show for each of its events, encoded together ([`crate::rows`]: a string table
//! and small integers, about 24 bytes per event), each with the place of its line in the body,
//! so `query --json` returns the document exactly as sent. There is no SQLite row per event:
//! those rows and their time index would be most of the writer's work, on the one thread every
//! batch passes through, while the decoding threads encode `rows` in parallel. Batches are indexed by their newest event's time (`max_time`); user,
//! source address, host and action are indexed per batch in `terms` (one entry per distinct
//! value in a batch). A search reads the rows of the candidate batches, newest `max_time`
//! first, and stops once no further batch can hold one of the newest `limit` events. The
//! writer holds `terms` entries back and writes 64 batches' worth at a time, sorted, with the
//! `terms_upto` mark in `meta` ([`TERMS_FLUSH_BATCHES`]); searches read the batches above the
//! mark whole, and an open rebuilds the entries a crash lost from the batches' rows. Schema 1
//! (a copy of every document in a row per event, five per-row indices), schema 2 (a row per
//! event, no mark) and schema 3 (a row per event) are migrated on open, in one transaction
//! each.
//!
//! Times are INTEGER microseconds since the Unix epoch (UTC): exact ordering and range queries,
//! unlike RFC 3339 text whose fractional seconds break lexical order.
//!
//! The schema carries a version in `PRAGMA user_version` ([`SCHEMA_VERSION`]); a store from a
//! newer collector is refused rather than misread.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension as _, TransactionBehavior, params,
};
use uuid::Uuid;

use crate::ingest::Batch;
use crate::rows::{self, Rows};

/// The schema version this collector writes.
pub const SCHEMA_VERSION: i64 = 6;

/// How long a statement waits for another connection's lock (a `query` running beside the
/// server) before failing with "busy" (then 503 for a batch).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most batches the writer stores in one transaction (one commit, one fsync).
pub(crate) const GROUP_MAX_BATCHES: usize = 32;

/// SQLite's page cache for the writer, KiB (`PRAGMA cache_size` = minus this). The default
/// 2 MiB does not hold the five indices' working set, and every insert then re-reads pages.
pub(crate) const CACHE_KIB: i64 = 32 * 1024;

/// SQLite's page cache for every other connection (the fleet detections' and readers such as
/// `query` and the console), KiB: they read a few batches' rows at a time.
pub const READ_CACHE_KIB: i64 = 2 * 1024;

/// SQLite's memory-mapped I/O, bytes (`PRAGMA mmap_size`): none, so that the store's file is
/// never mapped into the collector's resident memory; reads go through the bounded page cache.
pub const MMAP_BYTES: i64 = 0;

/// WAL pages between automatic checkpoints (SQLite's default is 1000, about 4 MiB, i.e. a
/// checkpoint every three or four batches; index pages touched by several batches are then
/// copied into the database several times).
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 8192;

/// Batches whose `terms` entries the writer keeps in memory before it writes them in one sorted
/// pass. Written batch by batch, a batch's few hundred distinct values land on as many pages of
/// the `terms` B-tree, each rewritten at every commit: a third of the writer's CPU and most of
/// what it writes in a backlog.
pub(crate) const TERMS_FLUSH_BATCHES: usize = 64;

/// Longest a batch's `terms` entries wait in memory: the writer writes them once it has been
/// idle this long. Until then searches read the batches above the `terms_upto` mark directly.
pub(crate) const TERMS_FLUSH_AGE: Duration = Duration::from_secs(1);

/// Bytes of `terms` entries the writer holds back at most (values, plus [`TERM_ENTRY_BYTES`]
/// each): it writes them at once beyond this, whatever [`TERMS_FLUSH_BATCHES`] says. A batch of
/// distinct user names or addresses holds several times its event count in entries; counted in
/// batches alone, 64 maximal ones could hold hundreds of MiB outside the byte budget.
pub const TERMS_FLUSH_BYTES: usize = 4 << 20;

/// What one held-back `terms` entry costs besides its value's bytes: the (field, value, batch)
/// tuple and the value's allocation.
pub const TERM_ENTRY_BYTES: usize = std::mem::size_of::<(i64, String, i64)>() + 16;

/// Batches whose `terms` entries may wait in memory while writing them fails; beyond this they
/// are dropped from memory (searches still read those batches above the mark, and the next
/// start indexes them from their rows).
pub(crate) const TERMS_PENDING_MAX_BATCHES: usize = 4096;

/// Bytes of `terms` entries that may wait in memory while writing them fails, as
/// [`TERMS_PENDING_MAX_BATCHES`] (whichever comes first).
pub const TERMS_PENDING_MAX_BYTES: usize = 4 * TERMS_FLUSH_BYTES;

/// SQLite page size for a new store, bytes.
pub(crate) const PAGE_SIZE: i64 = 16384;

/// Bound on a stored body's decompressed size when it is read back (the server accepts at most
/// its `max-decompressed-bytes`, which no sane configuration sets this high).
pub(crate) const MAX_STORED_BODY_BYTES: u64 = 1 << 30;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agents (
    id         INTEGER PRIMARY KEY,
    agent_id   TEXT NOT NULL UNIQUE,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    hostname   TEXT,
    last_seq   INTEGER,
    facts      TEXT,
    rejected   INTEGER NOT NULL DEFAULT 0,
    forged     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    id          INTEGER PRIMARY KEY,
    agent       INTEGER NOT NULL REFERENCES agents (id),
    stream      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    max_time    INTEGER,
    body        BLOB NOT NULL,
    min_time    INTEGER,
    rows        BLOB,
    format      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (agent, stream, seq)
);
CREATE INDEX IF NOT EXISTS batches_time ON batches (max_time, id, min_time);
DROP INDEX IF EXISTS batches_max_time;
CREATE TABLE IF NOT EXISTS terms (
    field INTEGER NOT NULL,
    value TEXT NOT NULL,
    batch INTEGER NOT NULL REFERENCES batches (id),
    PRIMARY KEY (field, value, batch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('terms_upto', 0);
";

/// A column [`terms`](SCHEMA) indexes: its code in `terms.field`, its name, its column in a
/// [`rows::Row`], and its value in a [`Filter`].
type TermField = (i64, &'static str, usize, fn(&Filter) -> &Option<String>);

/// The indexed columns, most selective first (the order in which `query` picks the one to look
/// up).
const TERM_FIELDS: [TermField; 4] = [
    (2, "source_ip", rows::SOURCE_IP, |f| &f.source_ip),
    (1, "user", rows::USER, |f| &f.user),
    (3, "host", rows::HOST, |f| &f.host),
    (4, "action", rows::ACTION, |f| &f.action),
];

/// The distinct (field, value) pairs of a batch's rows, sorted (so that their inserts walk the
/// `terms` B-tree in order).
fn batch_terms<'a>(rows: &Rows<'a>) -> Vec<(i64, &'a str)> {
    // (field, code) packed in one u64: 8 bytes an entry, not 16 (a maximal batch has hundreds
    // of thousands of them, held by the writer outside the byte budget).
    let mut codes: Vec<u64> = Vec::with_capacity(rows.rows.len() * TERM_FIELDS.len());
    for r in &rows.rows {
        for (field, _, column, _) in TERM_FIELDS {
            codes.push(((field as u64) << 32) | u64::from(r.columns[column]));
        }
    }
    codes.sort_unstable();
    codes.dedup();
    // Allocated once at its size (`writer_bytes` counts it so).
    let mut terms: Vec<(i64, &str)> = Vec::with_capacity(codes.len());
    terms.extend(
        codes
            .into_iter()
            .filter_map(|packed| Some(((packed >> 32) as i64, rows.text(packed as u32)?))),
    );
    terms.sort_unstable();
    terms
}

/// Bytes a list of `n` items of `size` bytes holds at the most while serde decodes it: it
/// starts at a cautious guess (at most 1 MiB of items) and doubles, holding the old and the
/// new block while it moves.
fn decoded_list_bytes(n: usize, size: usize) -> u64 {
    let first = n.min((1 << 20) / size.max(1));
    if n <= first {
        return (n * size) as u64;
    }
    let mut cap = first.max(1);
    while cap < n {
        cap *= 2;
    }
    (cap + cap / 2) as u64 * size as u64
}

/// Bytes a list of `n` items of `size` bytes that grows by pushes holds at the most: its
/// capacity doubles from 4, and it holds the old and the new block while it moves.
fn pushed_list_bytes(n: usize, size: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    let cap = n.next_power_of_two().max(4);
    (cap + cap / 2) as u64 * size as u64
}

/// Bytes the writer holds while it stores `batch`, besides the batch itself: SQLite's copies
/// of the body and the rows (each blob is bound as a copy, and the record SQLite assembles
/// from them is another), the rows decoded ([`decoded_list_bytes`]), the terms' codes, their
/// sorted list and their held-back entries (one per distinct value of an indexed column,
/// [`Batch::column_values`], each with a copy of its value: a string may be the value of
/// every indexed column). The server grants this with the batch, so that the writer's only memory
/// outside the byte budget is its page cache and the held-back entries of earlier batches.
/// The Rust side is checked against a counting allocator by `tests/grants.rs`.
pub fn writer_bytes(batch: &Batch) -> u64 {
    let n = batch.event_count;
    if n == 0 {
        return 0;
    }
    let (strings, string_bytes) = Rows::string_stats(&batch.rows);
    let terms: usize = TERM_FIELDS
        .iter()
        .map(|&(_, _, column, _)| batch.column_values[column] as usize)
        .sum();
    let sqlite = 2 * (batch.body.len() + batch.rows.len()) as u64;
    let decoded = decoded_list_bytes(n, size_of::<rows::Row>())
        + decoded_list_bytes(strings, size_of::<&str>());
    let codes = (n * TERM_FIELDS.len() * size_of::<u64>()) as u64;
    let sorted = (terms * size_of::<(i64, &str)>()) as u64;
    // Each held-back entry with its value's copy (rounded up by the allocator), in a list
    // that doubles.
    let held = pushed_list_bytes(terms, size_of::<(i64, String, i64)>())
        + (terms * 16 + string_bytes * TERM_FIELDS.len()) as u64;
    sqlite + decoded + codes + sorted + held
}

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
    /// The file is empty (read-only: `serve` creates it) or from a pre-release collector,
    /// whose stores are not migrated.
    #[error(
        "store schema version {found} is not this collector's ({SCHEMA_VERSION}): {}",
        if *.found == 0 {
            "the store is empty; `authtrail-collector serve` creates it"
        } else {
            "it was written by a pre-release collector and is not migrated; move the file \
             (with its -wal and -shm files) aside and let `authtrail-collector serve` start a \
             new store"
        }
    )]
    OlderSchema {
        /// `PRAGMA user_version`.
        found: i64,
    },
    /// The writer thread is gone (shutting down).
    #[error("the store's writer has stopped")]
    WriterGone,
    /// A stored body does not decompress, or does not hold a document where an event says.
    #[error("store: batch {batch} is damaged: {reason}")]
    Corrupt {
        /// `batches.id`.
        batch: i64,
        /// What is wrong.
        reason: String,
    },
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
    /// (agent, stream, seq) was already stored with the same content (digest); nothing was
    /// written but the agent's last contact.
    Duplicate,
    /// (agent, stream, seq) was already stored with *other* content: nothing was written but
    /// the agent's last contact. The agent must send the batch again under a new stream.
    Conflict {
        /// The digest of the batch stored under that key.
        stored: [u8; 32],
    },
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// `terms` entries of committed batches above the `terms_upto` mark, not yet written.
    pending: PendingTerms,
}

/// `terms` entries the writer holds back (see [`TERMS_FLUSH_BATCHES`]).
#[derive(Debug, Default)]
struct PendingTerms {
    /// (field code, value, batch id).
    terms: Vec<(i64, String, i64)>,
    /// Committed batches covered, and the highest of their ids.
    batches: usize,
    upto: i64,
    /// What `terms` holds, bytes ([`TERM_ENTRY_BYTES`] and the values).
    bytes: usize,
}

/// The batches [`Store::query`] reads, as `(id, max_time)` rows, newest `max_time` first: those
/// whose `terms` entries hold the filter's most selective value (and every batch above the
/// `terms_upto` mark, which has no entries yet), else every batch with events; either way only
/// those with an event at or after `since`.
fn query_sql(filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    let mut args: Vec<rusqlite::types::Value> = vec![
        filter.since_us.unwrap_or(i64::MIN).into(),
        filter.until_us.into(),
    ];
    // `min_time` is in `batches_time`, so the no-term search filters newer batches on index
    // entries alone; a term search reads a candidate batch's row for it (as for `max_time`).
    let term = TERM_FIELDS
        .iter()
        .find_map(|&(code, _, _, wanted)| wanted(filter).as_ref().map(|v| (code, v)));
    let sql = if let Some((code, v)) = term {
        args.push(code.into());
        args.push(v.clone().into());
        "SELECT b.id, b.max_time FROM batches b \
         WHERE b.id IN (SELECT batch FROM terms WHERE field = ?3 AND value = ?4 \
             UNION ALL SELECT id FROM batches \
             WHERE id > (SELECT value FROM meta WHERE key = 'terms_upto')) \
         AND +b.max_time >= ?1 AND (?2 IS NULL OR +b.min_time <= ?2) ORDER BY b.max_time DESC, b.id DESC"
    } else {
        "SELECT id, max_time FROM batches WHERE max_time >= ?1 AND (?2 IS NULL OR min_time <= ?2) \
         ORDER BY max_time DESC, id DESC"
    };
    (sql.to_owned(), args)
}

/// An event [`Store::query`] keeps: ordered by time, then as stored (batch, then place in it).
#[derive(Debug)]
struct Hit {
    key: (i64, i64, usize),
    row: EventRow,
    line: (i64, i64, i64),
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Reads a batch's stored rows.
fn decode_rows(batch: i64, bytes: &[u8]) -> Result<Rows<'_>, StoreError> {
    Rows::decode(bytes).map_err(|e| StoreError::Corrupt {
        batch,
        reason: e.to_string(),
    })
}

impl Drop for Store {
    /// Writes the held-back `terms` entries (a store dropped without this, by a crash, has them
    /// written from the rows at its next open).
    fn drop(&mut self) {
        let _ = self.flush_terms();
    }
}

/// `batches.format`: 0 NDJSON, 1 the compact body.
fn format_code(format: crate::ingest::Body) -> i64 {
    match format {
        crate::ingest::Body::Ndjson => 0,
        crate::ingest::Body::Compact => 1,
    }
}

/// A stored batch's documents as NDJSON, exactly as an agent sending NDJSON would have sent
/// them: its body decompressed, and rendered when it is a compact body.
pub(crate) fn stored_ndjson(conn: &Connection, batch: i64) -> Result<Vec<u8>, StoreError> {
    let (body, format): (Vec<u8>, i64) = conn
        .prepare_cached("SELECT body, format FROM batches WHERE id = ?1")?
        .query_row([batch], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let corrupt = |reason: String| StoreError::Corrupt { batch, reason };
    let raw =
        crate::ingest::decompress(crate::ingest::Encoding::Zstd, &body, MAX_STORED_BODY_BYTES)
            .map_err(|e| corrupt(e.to_string()))?;
    match format {
        0 => Ok(raw),
        1 => {
            // Stored only once `ingest` decoded it (canonical): rendered without that check.
            let len = agent_core::batch::rendered_len(&raw).map_err(|e| corrupt(e.to_string()))?;
            let mut ndjson = Vec::with_capacity(len.min(MAX_STORED_BODY_BYTES as usize));
            agent_core::batch::render_accepted(&raw, MAX_STORED_BODY_BYTES as usize, &mut ndjson)
                .map_err(|e| corrupt(e.to_string()))?;
            Ok(ndjson)
        }
        other => Err(corrupt(format!("unknown body format {other}"))),
    }
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
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Only takes effect on a new (empty) file, and must come before WAL mode.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        match check_version(&conn)? {
            SCHEMA_VERSION => {}
            0 => {
                conn.execute_batch(SCHEMA)?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            found => return Err(StoreError::OlderSchema { found }),
        }
        index_unindexed(&mut conn)?;
        Ok(Store {
            conn,
            pending: PendingTerms::default(),
        })
    }

    /// The SQLite connection, for the alert tables ([`crate::alerts`]), which keep to
    /// themselves.
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Edge and fleet alerts, newest first ([`crate::alerts::list`]).
    pub fn alerts(
        &self,
        filter: &crate::alerts::AlertFilter,
    ) -> Result<Vec<crate::alerts::AlertRow>, StoreError> {
        crate::alerts::list(&self.conn, filter)
    }

    /// Opens an existing store read-only (for `query` and `stats`).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        match check_version(&conn)? {
            SCHEMA_VERSION => Ok(Store {
                conn,
                pending: PendingTerms::default(),
            }),
            found => Err(StoreError::OlderSchema { found }),
        }
    }

    /// Sets this connection's page cache to `kib` KiB (`PRAGMA cache_size`), e.g.
    /// [`READ_CACHE_KIB`] for a writing connection that mostly reads.
    pub fn set_cache_kib(&self, kib: i64) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "cache_size", -kib)?;
        Ok(())
    }

    /// Stores a batch in one transaction, unless (agent, [`Batch::stream`], seq) is already
    /// stored (then [`Outcome::Duplicate`] for the same [`Batch::digest`], else
    /// [`Outcome::Conflict`]). Either way the agent's last contact becomes `now_us`. Returns only after the commit (fsync'd).
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
        let mut terms = PendingTerms::default();
        let outcome = insert_in(&tx, agent, seq, batch, now_us, &mut terms)?;
        tx.commit()?;
        self.hold_terms(terms);
        Ok(outcome)
    }

    /// Takes the `terms` entries of just-committed batches; writes them all once
    /// [`TERMS_FLUSH_BATCHES`] batches wait.
    fn hold_terms(&mut self, mut terms: PendingTerms) {
        let p = &mut self.pending;
        p.terms.append(&mut terms.terms);
        p.batches += terms.batches;
        p.upto = p.upto.max(terms.upto);
        p.bytes += terms.bytes;
        if p.batches >= TERMS_FLUSH_BATCHES || p.bytes >= TERMS_FLUSH_BYTES {
            // On failure they stay pending (bounded); searches read those batches meanwhile.
            let _ = self.flush_terms();
        }
    }

    /// True when batches' `terms` entries wait in memory.
    pub(crate) fn has_pending_terms(&self) -> bool {
        self.pending.batches > 0
    }

    /// Writes the held-back `terms` entries, sorted, in one transaction with the `terms_upto`
    /// mark. On failure they stay pending, up to [`TERMS_PENDING_MAX_BATCHES`] batches or
    /// [`TERMS_PENDING_MAX_BYTES`]; beyond
    /// that they are dropped (searches read those batches whole, and the next start indexes
    /// them from their rows).
    pub(crate) fn flush_terms(&mut self) -> Result<(), StoreError> {
        if self.pending.batches == 0 {
            return Ok(());
        }
        self.pending.terms.sort_unstable();
        let written = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            write_terms(&tx, &self.pending.terms, self.pending.upto)?;
            tx.commit()?;
            Ok::<_, StoreError>(())
        })();
        if written.is_ok()
            || self.pending.batches > TERMS_PENDING_MAX_BATCHES
            || self.pending.bytes > TERMS_PENDING_MAX_BYTES
        {
            self.pending = PendingTerms::default();
        }
        written
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
                let mut terms = PendingTerms::default();
                for &(agent, seq, batch, now_us) in batches {
                    outcomes.push(insert_in(&tx, agent, seq, batch, now_us, &mut terms)?);
                }
                tx.commit()?;
                Ok::<_, StoreError>((outcomes, terms))
            })();
            if let Ok((outcomes, terms)) = grouped {
                self.hold_terms(terms);
                return outcomes.into_iter().map(Ok).collect();
            }
            // The transaction was rolled back when it dropped: nothing of the group is stored.
        }
        batches
            .iter()
            .map(|&(agent, seq, batch, now_us)| self.insert(agent, seq, batch, now_us))
            .collect()
    }

    /// Whether (agent, stream, seq) is stored.
    #[cfg(test)]
    pub(crate) fn has_batch(
        &self,
        agent: Uuid,
        stream: &str,
        seq: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM batches JOIN agents ON agents.id = batches.agent \
                 WHERE agents.agent_id = ?1 AND batches.stream = ?2 AND batches.seq = ?3",
                params![agent.to_string(), stream, seq],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Events matching `filter`, oldest first (the newest `filter.limit` of them).
    ///
    /// The candidate batches (`query_sql`) are read newest `max_time` first, and reading stops
    /// at the first batch whose events are all older than the `limit` newest found so far.
    pub fn query(&self, filter: &Filter) -> Result<Vec<EventRow>, StoreError> {
        let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, args) = query_sql(filter);
        let mut batches = self.conn.prepare(&sql)?;
        let mut batches = batches.query(rusqlite::params_from_iter(args))?;
        let mut load = self
            .conn
            .prepare_cached("SELECT rows FROM batches WHERE id = ?1")?;
        let since = filter.since_us.unwrap_or(i64::MIN);
        let until = filter.until_us.unwrap_or(i64::MAX);
        // The newest `limit` so far, oldest on top.
        let mut kept: BinaryHeap<Reverse<Hit>> = BinaryHeap::new();
        while let Some(b) = batches.next()? {
            let (batch, max_time): (i64, i64) = (b.get(0)?, b.get(1)?);
            if kept.len() == limit && kept.peek().is_some_and(|Reverse(h)| max_time < h.key.0) {
                break;
            }
            let Some(bytes) = load
                .query_row([batch], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()?
                .flatten()
            else {
                continue;
            };
            let rows = decode_rows(batch, &bytes)?;
            // Each wanted value as this batch's code; a value it does not hold rules it out.
            let mut wanted: Vec<(usize, u32)> = Vec::new();
            let mut absent = false;
            for (_, _, column, value) in TERM_FIELDS {
                if let Some(v) = value(filter) {
                    match rows.code(v) {
                        Some(code) => wanted.push((column, code)),
                        None => absent = true,
                    }
                }
            }
            if absent {
                continue;
            }
            for (i, r) in rows.rows.iter().enumerate() {
                let time = rows.time(r);
                if time < since
                    || time > until
                    || !wanted
                        .iter()
                        .all(|&(column, code)| r.columns[column] == code)
                {
                    continue;
                }
                let key = (time, batch, i);
                if kept.len() == limit {
                    if kept.peek().is_some_and(|Reverse(h)| key < h.key) {
                        continue;
                    }
                    kept.pop();
                }
                let e = rows.event(r);
                kept.push(Reverse(Hit {
                    key,
                    line: (batch, e.line.start as i64, e.line.end as i64),
                    row: EventRow {
                        timestamp_us: e.timestamp_us,
                        host: e.host,
                        action: e.action,
                        outcome: e.outcome,
                        user: e.user,
                        target_user: e.target_user,
                        source_ip: e.source_ip,
                        source_port: e.source_port,
                        process: e.process,
                        method: e.method,
                        doc: None,
                    },
                }));
            }
        }
        let mut hits: Vec<Hit> = kept.into_iter().map(|Reverse(h)| h).collect();
        hits.sort_unstable();
        let lines: Vec<(i64, i64, i64)> = hits.iter().map(|h| h.line).collect();
        let mut rows: Vec<EventRow> = hits.into_iter().map(|h| h.row).collect();
        if filter.documents {
            self.fill_documents(&mut rows, &lines)?;
        }
        Ok(rows)
    }

    /// Cuts each row's document out of its batch's body: one body decompressed at a time, each
    /// once however many of the rows it holds.
    fn fill_documents(
        &self,
        rows: &mut [EventRow],
        lines: &[(i64, i64, i64)],
    ) -> Result<(), StoreError> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| lines[i].0);
        let mut current: Option<(i64, Vec<u8>)> = None;
        for i in order {
            let (batch, start, end) = lines[i];
            if current.as_ref().is_none_or(|(id, _)| *id != batch) {
                current = Some((batch, stored_ndjson(&self.conn, batch)?));
            }
            let Some((_, ndjson)) = &current else {
                unreachable!("set just above")
            };
            let doc = usize::try_from(start)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(s, e)| ndjson.get(s..e))
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    batch,
                    reason: format!("no document at bytes {start}..{end}"),
                })?;
            rows[i].doc = Some(doc.to_owned());
        }
        Ok(())
    }

    /// The distinct `event.action` values of the stored events (from `terms`; the entries the
    /// writer still holds back are not in it).
    pub fn actions(&self) -> Result<Vec<String>, StoreError> {
        let field = TERM_FIELDS
            .iter()
            .find(|t| t.1 == "action")
            .map_or(4, |t| t.0);
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT value FROM terms WHERE field = ?1")?;
        let rows = stmt.query_map([field], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts per host and action, every agent, and source addresses that failed against at
    /// least `spread` distinct hosts since `window_start_us`.
    pub fn stats(
        &self,
        since_us: Option<i64>,
        window_start_us: i64,
        spread: u32,
    ) -> Result<Stats, StoreError> {
        let since = since_us.unwrap_or(i64::MIN);
        // Keyed by the authenticated agent first: `host.hostname` is only what an agent says.
        let mut counts: BTreeMap<(String, Option<String>, Option<String>), u64> = BTreeMap::new();
        // Failing source address: the hosts it failed against, and its failures.
        let mut spread_by_ip: HashMap<String, (BTreeSet<String>, u64)> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT b.id, b.rows, a.agent_id FROM batches b JOIN agents a ON a.id = b.agent \
                 WHERE b.max_time >= ?1 AND b.rows IS NOT NULL",
        )?;
        let mut batches = stmt.query([since.min(window_start_us)])?;
        while let Some(b) = batches.next()? {
            let batch: i64 = b.get(0)?;
            let bytes: Vec<u8> = b.get(1)?;
            let agent: String = b.get(2)?;
            let rows = decode_rows(batch, &bytes)?;
            let failures = ["auth_failure", "invalid_user"].map(|a| rows.code(a));
            // Per batch by code first: a few map entries per batch, not one string per event.
            let mut batch_counts: HashMap<(u32, u32), u64> = HashMap::new();
            let mut batch_spread: HashMap<u32, (BTreeSet<u32>, u64)> = HashMap::new();
            for r in &rows.rows {
                let time = rows.time(r);
                let [host, action, ip] =
                    [rows::HOST, rows::ACTION, rows::SOURCE_IP].map(|c| r.columns[c]);
                if time >= since {
                    *batch_counts.entry((host, action)).or_default() += 1;
                }
                if time >= window_start_us && ip != 0 && failures.contains(&Some(action)) {
                    let entry = batch_spread.entry(ip).or_default();
                    if host != 0 {
                        entry.0.insert(host);
                    }
                    entry.1 += 1;
                }
            }
            let text = |code| rows.text(code).map(str::to_owned);
            for ((host, action), n) in batch_counts {
                *counts
                    .entry((agent.clone(), text(host), text(action)))
                    .or_default() += n;
            }
            for (ip, (hosts, n)) in batch_spread {
                let Some(ip) = text(ip) else { continue };
                let entry = spread_by_ip.entry(ip).or_default();
                entry.0.extend(hosts.into_iter().filter_map(text));
                entry.1 += n;
            }
        }
        let mut spread_sources: Vec<SpreadRow> = spread_by_ip
            .into_iter()
            .filter(|(_, (hosts, _))| hosts.len() as u64 >= u64::from(spread))
            .map(|(source_ip, (hosts, failures))| SpreadRow {
                source_ip,
                hosts: hosts.len() as u64,
                failures,
            })
            .collect();
        spread_sources.sort_by(|a, b| {
            (b.hosts, b.failures, &a.source_ip).cmp(&(a.hosts, a.failures, &b.source_ip))
        });
        let mut stmt = self.conn.prepare(
            "SELECT agent_id, hostname, first_seen, last_seen, last_seq, rejected, forged \
             FROM agents ORDER BY hostname, agent_id",
        )?;
        let agents = stmt
            .query_map([], |r| {
                Ok(AgentRow {
                    agent_id: r.get(0)?,
                    hostname: r.get(1)?,
                    first_seen_us: r.get(2)?,
                    last_seen_us: r.get(3)?,
                    last_seq: r.get(4)?,
                    rejected: r.get(5)?,
                    forged: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Stats {
            counts: counts
                .into_iter()
                .map(|((agent, host, action), n)| (agent, host, action, n))
                .collect(),
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
    terms: &mut PendingTerms,
) -> Result<Outcome, StoreError> {
    // The agent's row first: its id keys the batch, and its last contact moves either way.
    let agent_row: i64 = tx
        .prepare_cached(
            "INSERT INTO agents (agent_id, first_seen, last_seen) VALUES (?1, ?2, ?2) \
             ON CONFLICT (agent_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen) \
             RETURNING id",
        )?
        .query_row(params![agent.to_string(), now_us], |r| r.get(0))?;
    let seen: Option<Vec<u8>> = tx
        .prepare_cached("SELECT digest FROM batches WHERE agent = ?1 AND stream = ?2 AND seq = ?3")?
        .query_row(params![agent_row, batch.stream, seq], |r| r.get(0))
        .optional()?;
    if let Some(stored) = seen {
        if stored[..] == batch.digest[..] {
            return Ok(Outcome::Duplicate);
        }
        let mut digest = [0u8; 32];
        if stored.len() == digest.len() {
            digest.copy_from_slice(&stored);
        }
        return Ok(Outcome::Conflict { stored: digest });
    }
    let rows = if batch.rows.is_empty() {
        None
    } else {
        Some(decode_rows(seq, &batch.rows)?)
    };
    let times = rows
        .iter()
        .flat_map(|rows| rows.rows.iter().map(|r| rows.time(r)));
    tx.prepare_cached(
        "INSERT INTO batches (agent, stream, seq, digest, received_at, events, min_time, \
         max_time, body, rows, format) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        agent_row,
        batch.stream,
        seq,
        &batch.digest[..],
        now_us,
        batch.event_count as i64,
        times.clone().min(),
        times.max(),
        batch.body,
        rows.is_some().then_some(&batch.rows),
        format_code(batch.format),
    ])?;
    let batch_row = tx.last_insert_rowid();
    if let Some(rows) = &rows {
        for (code, value) in batch_terms(rows) {
            terms.bytes += TERM_ENTRY_BYTES + value.len();
            terms.terms.push((code, value.to_owned(), batch_row));
        }
    }
    terms.batches += 1;
    terms.upto = terms.upto.max(batch_row);
    tx.prepare_cached(
        "UPDATE agents SET hostname = coalesce(?2, hostname), \
             last_seq = max(coalesce(last_seq, ?3), ?3), facts = coalesce(?4, facts), \
             rejected = rejected + ?5, forged = forged + ?6 \
         WHERE id = ?1",
    )?
    .execute(params![
        agent_row,
        batch.hostname(),
        seq,
        batch.state.as_ref().map(|s| s.doc.as_str()),
        batch.rejected_count as i64,
        batch.forged as i64,
    ])?;
    Ok(Outcome::Stored {
        events: batch.event_count,
    })
}

/// Writes the `terms` entries of the batches above the `terms_upto` mark (left by a writer that
/// stopped before writing the ones it held back) from their rows, and moves the mark.
fn index_unindexed(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (upto, last): (i64, Option<i64>) = tx.query_row(
        "SELECT m.value, (SELECT max(id) FROM batches) FROM meta m WHERE m.key = 'terms_upto'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(last) = last.filter(|&l| l > upto) else {
        return Ok(());
    };
    let mut terms: Vec<(i64, String, i64)> = Vec::new();
    {
        let mut stmt =
            tx.prepare("SELECT id, rows FROM batches WHERE id > ?1 AND rows IS NOT NULL")?;
        let mut batches = stmt.query([upto])?;
        while let Some(b) = batches.next()? {
            let batch: i64 = b.get(0)?;
            let bytes: Vec<u8> = b.get(1)?;
            let rows = decode_rows(batch, &bytes)?;
            terms.extend(
                batch_terms(&rows)
                    .into_iter()
                    .map(|(code, value)| (code, value.to_owned(), batch)),
            );
        }
    }
    terms.sort_unstable();
    write_terms(&tx, &terms, last)?;
    tx.commit()?;
    Ok(())
}

/// Inserts `terms` entries (sorted) and moves the `terms_upto` mark up to `upto`.
fn write_terms(
    tx: &rusqlite::Transaction<'_>,
    terms: &[(i64, String, i64)],
    upto: i64,
) -> Result<(), StoreError> {
    let mut put =
        tx.prepare_cached("INSERT OR IGNORE INTO terms (field, value, batch) VALUES (?1, ?2, ?3)")?;
    for (code, value, batch) in terms {
        put.execute(params![code, value, batch])?;
    }
    tx.execute(
        "UPDATE meta SET value = max(value, ?1) WHERE key = 'terms_upto'",
        [upto],
    )?;
    Ok(())
}

/// What `query` selects. Every `Some` must match exactly.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// Events at or before this time (µs since the epoch): applied to the batches in SQL
    /// (`min_time`), so an old page is found without reading a newer batch's rows.
    pub until_us: Option<i64>,
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
    /// Fill [`EventRow::doc`] (each batch holding a row is decompressed once).
    pub documents: bool,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The columns of `crate::rows::Row`.
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
    /// The event as the agent sent it, when [`Filter::documents`] asked for it.
    pub doc: Option<String>,
}

impl EventRow {
    /// The row's columns, borrowed (no kind, no line: a stored row keeps neither).
    pub fn as_ref(&self) -> crate::rows::EventRef<'_> {
        crate::rows::EventRef {
            timestamp_us: self.timestamp_us,
            host: self.host.as_deref(),
            kind: None,
            action: self.action.as_deref(),
            outcome: self.outcome.as_deref(),
            user: self.user.as_deref(),
            target_user: self.target_user.as_deref(),
            source_ip: self.source_ip.as_deref(),
            source_port: self.source_port,
            process: self.process.as_deref(),
            method: self.method.as_deref(),
            line: 0..0,
        }
    }
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
    /// Events the contract refused, since the first batch.
    pub rejected: i64,
    /// Of those, events that claimed another agent's `agent.id`.
    pub forged: i64,
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
    /// (authenticated agent id, host as that agent reports it, action, events).
    pub counts: Vec<(String, Option<String>, Option<String>, u64)>,
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
pub(crate) struct QueueFull;

/// The sending side of the writer thread: the async server hands batches here so that SQLite's
/// blocking commits (fsync) never run on the runtime's threads.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store` with a queue of `capacity` batches. The thread ends
    /// when every [`Writer`] clone is dropped, after the queued batches are stored. With
    /// `alerts`, it tells the fleet detections' thread ([`crate::alerts::AlertsThread`]) after
    /// each group's commit that batches wait for it; that thread is stopped (and has read every
    /// batch) before this writer's thread ends.
    pub(crate) fn spawn_with(
        mut store: Store,
        capacity: usize,
        alerts: Option<crate::alerts::AlertsThread>,
    ) -> std::io::Result<(Writer, thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let handle = thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || {
                // One commit for the first batch and every one queued behind it. Held-back
                // `terms` entries are written once the queue has been idle TERMS_FLUSH_AGE.
                loop {
                    let first = if store.has_pending_terms() {
                        match rx.recv_timeout(TERMS_FLUSH_AGE) {
                            Ok(job) => job,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                let _ = store.flush_terms();
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    } else {
                        match rx.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    };
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
                    if let Some(a) = &alerts {
                        a.notify();
                    }
                }
                let _ = store.flush_terms();
                if let Some(a) = alerts {
                    a.stop();
                }
            })?;
        Ok((Writer { queue: tx }, handle))
    }

    /// Queues a batch; fails at once when the queue is full.
    pub(crate) fn submit(
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
    use crate::ingest::{Body, Encoding, decode};

    fn batch(lines: &[&str]) -> Batch {
        decode(
            Encoding::Identity,
            lines.join("\n").into_bytes(),
            1 << 20,
            None,
        )
        .unwrap()
    }

    fn all(s: &Store) -> Vec<EventRow> {
        s.query(&Filter {
            limit: 1000,
            documents: true,
            ..Filter::default()
        })
        .unwrap()
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
        assert_eq!(all(&s).len(), 4);
        let docs: Vec<_> = all(&s).into_iter().map(|r| r.doc.unwrap()).collect();
        assert_eq!(docs, [e.clone(), e.clone(), e.clone(), e.clone()]);
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
        assert!(s.has_batch(a, "", 1).unwrap());
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

    #[test]
    fn documents_come_back_exactly_from_each_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let a = Uuid::new_v4();
        let mut sent = Vec::new();
        for seq in 0..5 {
            let lines: Vec<String> = (0..7)
                .map(|i| {
                    let ts = format!("2026-01-01T00:{seq:02}:{i:02}Z");
                    // Escapes, non-ASCII and padding must survive the round trip.
                    ev(&ts, "h\\\\1\\u00e9", "auth_failure", "10.0.0.1")
                })
                .collect();
            let body = format!("  {}\r\n\n", lines.join("\r\n \t"));
            // Each encoding in turn: a zstd body is kept as sent, the others are compressed.
            let (enc, wire) = match seq % 3 {
                0 => (Encoding::Identity, body.into_bytes()),
                1 => (
                    Encoding::Zstd,
                    zstd::encode_all(body.as_bytes(), 3).unwrap(),
                ),
                _ => {
                    let mut g = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    std::io::Write::write_all(&mut g, body.as_bytes()).unwrap();
                    (Encoding::Gzip, g.finish().unwrap())
                }
            };
            let b = decode(enc, wire.clone(), 1 << 20, None).unwrap();
            assert_eq!((b.event_count, b.events().unwrap().len()), (7, 7));
            if enc == Encoding::Zstd {
                assert_eq!(b.body, wire);
            }
            s.insert(a, seq, &b, 0).unwrap();
            sent.extend(lines);
        }
        let rows = all(&s);
        let docs: Vec<_> = rows.iter().map(|r| r.doc.clone().unwrap()).collect();
        assert_eq!(docs, sent);
        assert_eq!(rows[0].host.as_deref(), Some("h\\1\u{e9}"));
        // Without documents asked for, none are read.
        let bare = s
            .query(&Filter {
                limit: 3,
                ..Filter::default()
            })
            .unwrap();
        assert!(bare.iter().all(|r| r.doc.is_none()));
        assert_eq!(bare.len(), 3);
    }

    #[test]
    fn a_compact_batch_is_stored_compact_and_reads_back_as_the_ndjson_an_agent_sends() {
        // The same events sent as NDJSON and as a compact body: the same rows, the same
        // refusals by line, and `query --json` (and the console) get the same bytes back.
        let lines: Vec<String> = (0..40)
            .map(|i| {
                let ip = format!("203.0.113.{i}");
                let ts = format!("2026-11-28T00:00:{i:02}.{:06}Z", i * 7919);
                let action = if i == 13 {
                    "not_an_action"
                } else {
                    "auth_failure"
                };
                let line = format!(
                    "2026-11-28T00:00:{i:02}.{:06}+00:00 web1 sshd[{}]: Failed password for \
                     root from {ip} port {} ssh2",
                    i * 7919,
                    1000 + i,
                    40000 + i
                );
                let e = ev(&ts, "web1", action, &ip);
                format!(
                    "{},\"log\":{{\"offset\":{}}},\"message\":\"{line}\"}}",
                    e.strip_suffix('}').unwrap(),
                    i * 90
                )
            })
            .collect();
        let ndjson = lines.join("\n") + "\n";
        let mut compact = Vec::new();
        agent_core::batch::encode(ndjson.as_bytes(), &mut compact).unwrap();
        let z = |b: &[u8]| zstd::bulk::compress(b, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut stored = Vec::new();
        let mut bodies = Vec::new();
        for (name, kind, body) in [
            ("ndjson.db", Body::Ndjson, z(ndjson.as_bytes())),
            ("compact.db", Body::Compact, z(&compact)),
        ] {
            let b = crate::ingest::decode_as(Encoding::Zstd, kind, body, 1 << 20, None).unwrap();
            assert_eq!(b.format, kind);
            assert_eq!((b.event_count, b.rejected_count), (39, 1));
            assert_eq!(b.rejected[0].line, 14, "line number = place in the batch");
            let mut s = Store::open(&dir.path().join(name)).unwrap();
            s.insert(Uuid::nil(), 1, &b, 0).unwrap();
            stored.push(all(&s));
            bodies.push(b.body.len());
        }
        assert_eq!(stored[0], stored[1]);
        let docs: Vec<String> = stored[1].iter().map(|r| r.doc.clone().unwrap()).collect();
        let mut want: Vec<String> = lines.clone();
        want.remove(13);
        want.reverse();
        let mut docs_sorted = docs.clone();
        docs_sorted.sort();
        want.sort();
        assert_eq!(docs_sorted, want);
        assert!(bodies[1] < bodies[0], "stored bytes: {bodies:?}");
        // A compact body that is not canonical is refused whole (400), not half-read.
        let mut bad = compact.clone();
        bad.push(0);
        assert!(matches!(
            crate::ingest::decode_as(Encoding::Identity, Body::Compact, bad, 1 << 20, None),
            Err(crate::ingest::DecodeError::Compact(_))
        ));
        // Its rendering is bounded by the decompressed limit, before it is made.
        assert!(matches!(
            crate::ingest::decode_as(
                Encoding::Identity,
                Body::Compact,
                compact,
                ndjson.len() as u64 - 1,
                None
            ),
            Err(crate::ingest::DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_pre_release_store_is_refused_with_a_clear_error() {
        // Schemas 1 to 4 never shipped: there is no migration, and the message says what to do.
        for version in 1..SCHEMA_VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.db");
            {
                let c = Connection::open(&path).unwrap();
                c.execute_batch("CREATE TABLE batches (agent_id TEXT, seq INTEGER);")
                    .unwrap();
                c.pragma_update(None, "user_version", version).unwrap();
            }
            for e in [
                Store::open(&path).unwrap_err(),
                Store::open_read_only(&path).unwrap_err(),
            ] {
                assert!(
                    matches!(e, StoreError::OlderSchema { found } if found == version),
                    "{e:?}"
                );
                let text = e.to_string();
                assert!(text.contains("pre-release"), "{text}");
                assert!(text.contains("move the file"), "{text}");
            }
            // Nothing was changed in it.
            let c = Connection::open(&path).unwrap();
            let v: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, version);
        }
        // An empty file opened read-only says that `serve` creates the store.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.db");
        Connection::open(&path).unwrap();
        let e = Store::open_read_only(&path).unwrap_err().to_string();
        assert!(e.contains("serve` creates it"), "{e}");
    }

    #[test]
    fn same_key_other_content_is_a_conflict_and_streams_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let a = Uuid::new_v4();
        let one = ev("2026-01-01T00:00:01Z", "h1", "auth_failure", "10.0.0.1");
        let two = ev("2026-01-01T00:00:02Z", "h1", "auth_failure", "10.0.0.2");
        let in_stream = |lines: &[&str], stream: &str| Batch {
            stream: stream.to_owned(),
            ..batch(lines)
        };
        let first = in_stream(&[&one], "s1");
        assert_eq!(
            s.insert(a, 1, &first, 0).unwrap(),
            Outcome::Stored { events: 1 }
        );
        // The identical batch again: a re-send.
        assert_eq!(s.insert(a, 1, &first, 0).unwrap(), Outcome::Duplicate);
        // The same key with other content: a conflict naming what is stored, nothing written.
        let other = in_stream(&[&two], "s1");
        assert_eq!(
            s.insert(a, 1, &other, 0).unwrap(),
            Outcome::Conflict {
                stored: first.digest
            }
        );
        assert_eq!(all(&s).len(), 1);
        // The same number in a new stream (a state dir that was reset) is a batch of its own.
        let reset = in_stream(&[&two], "s2");
        assert_eq!(
            s.insert(a, 1, &reset, 0).unwrap(),
            Outcome::Stored { events: 1 }
        );
        assert_eq!(all(&s).len(), 2);
        assert!(s.has_batch(a, "s1", 1).unwrap() && s.has_batch(a, "s2", 1).unwrap());
    }

    #[test]
    fn stats_group_by_the_authenticated_agent_and_count_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let (victim, attacker) = (Uuid::new_v4(), Uuid::new_v4());
        let e = ev(
            "2026-01-01T00:00:01Z",
            "victim-host",
            "auth_failure",
            "10.0.0.1",
        );
        s.insert(victim, 1, &batch(&[&e]), 0).unwrap();
        // The attacker reports the victim's host name and tries the victim's agent id.
        let forged = format!(
            "{{\"agent\":{{\"id\":\"{victim}\"}},{}",
            e.strip_prefix('{').unwrap()
        );
        let b = crate::ingest::decode(
            Encoding::Identity,
            format!("{e}\n{forged}\n").into_bytes(),
            1 << 20,
            Some(attacker),
        )
        .unwrap();
        assert_eq!((b.event_count, b.forged), (1, 1));
        s.insert(attacker, 1, &b, 0).unwrap();
        let stats = s.stats(None, 0, 3).unwrap();
        let host = Some("victim-host".to_owned());
        let action = Some("auth_failure".to_owned());
        let mut counts = stats.counts.clone();
        counts.sort();
        let mut want = vec![
            (victim.to_string(), host.clone(), action.clone(), 1),
            (attacker.to_string(), host, action, 1),
        ];
        want.sort();
        assert_eq!(counts, want);
        let row = |id: Uuid| {
            stats
                .agents
                .iter()
                .find(|r| r.agent_id == id.to_string())
                .unwrap()
                .clone()
        };
        assert_eq!((row(attacker).rejected, row(attacker).forged), (1, 1));
        assert_eq!((row(victim).rejected, row(victim).forged), (0, 0));
    }

    #[test]
    fn searches_find_batches_by_index_only() {
        // A plan that scans a table or builds an automatic index reads the whole store for each
        // search, which on a large store turns a fraction of a second into tens of seconds.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        for seq in 0..100 {
            let lines: Vec<String> = (0..200)
                .map(|i| {
                    let ts = format!("2026-01-01T{:02}:{:02}:{:02}Z", seq / 60, seq % 60, i % 60);
                    ev(&ts, "h", "sudo", &format!("192.0.2.{i}"))
                })
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            s.insert(Uuid::nil(), seq, &batch(&refs), 0).unwrap();
            if seq == 49 {
                s.flush_terms().unwrap();
            }
        }
        let some = |v: &str| Some(v.to_owned());
        let filters = [
            Filter::default(),
            Filter {
                since_us: Some(1),
                ..Filter::default()
            },
            Filter {
                user: some("root"),
                ..Filter::default()
            },
            Filter {
                since_us: Some(1),
                user: some("root"),
                source_ip: some("192.0.2.1"),
                host: some("h"),
                action: some("sudo"),
                ..Filter::default()
            },
            Filter {
                action: some("sudo"),
                host: some("h"),
                ..Filter::default()
            },
            Filter {
                until_us: Some(1),
                ..Filter::default()
            },
            Filter {
                since_us: Some(1),
                until_us: Some(2),
                user: some("root"),
                ..Filter::default()
            },
        ];
        for f in filters {
            let (sql, args) = query_sql(&f);
            let mut stmt = s
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let by_term = TERM_FIELDS.iter().any(|&(.., wanted)| wanted(&f).is_some());
            let expected = |l: &String| {
                // A batch by its id, the ones above the mark by an id range, or `terms`
                // entries by their key.
                l.starts_with("SEARCH b USING INTEGER PRIMARY KEY (rowid=?)")
                    || l.starts_with("SEARCH batches USING INTEGER PRIMARY KEY (rowid>?)")
                    || l.starts_with("SEARCH terms USING PRIMARY KEY (field=? AND value=?)")
                    || l.starts_with("SEARCH meta USING PRIMARY KEY (key=?)")
                    || !l.starts_with("SEARCH") && !l.starts_with("SCAN")
            };
            if by_term {
                assert!(
                    plan.iter().all(|l| expected(l) && !l.contains("AUTOMATIC"))
                        && plan.iter().any(|l| l.starts_with("SEARCH terms")),
                    "{f:?}: {plan:#?}"
                );
            } else {
                // Newest first straight from the index (no sort), so reading stops early.
                // An upper bound is read from the same index: a newer batch costs one index
                // entry, never its row.
                assert_eq!(
                    plan,
                    ["SEARCH batches USING COVERING INDEX batches_time (max_time>?)"],
                    "{f:?}"
                );
            }
        }
    }

    #[test]
    fn every_filter_agrees_with_a_plain_scan() {
        // Random events over many batches; each filter combination's answer must equal a
        // filter over everything sent, whichever index (terms or time) leads, and whether a
        // batch's `terms` entries were written by the writer, written from its rows at the next
        // open after a crash, or are still held back in memory.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut s = Store::open(&path).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (users, ips, hosts, actions) = (
            ["root", "admin", "bob"],
            ["10.0.0.1", "10.0.0.2", "2001:db8::1", "10.0.0.3"],
            ["h1", "h2"],
            ["auth_failure", "auth_success", "invalid_user"],
        );
        let mut sent = Vec::new();
        for seq in 0..40 {
            let mut lines = Vec::new();
            for _ in 0..1 + next(12) {
                // Times go back and forth across batches, as agents' backlogs do.
                let t = 1_767_225_600 + next(3_000) as i64;
                let ts = jiff::Timestamp::from_second(t).unwrap().to_string();
                let (u, ip, h, a) = (
                    users[next(3) as usize],
                    ips[next(4) as usize],
                    hosts[next(2) as usize],
                    actions[next(3) as usize],
                );
                let line = format!(
                    r#"{{"@timestamp":"{ts}","event":{{"kind":"event","action":"{a}"}},"host":{{"hostname":"{h}"}},"user":{{"name":"{u}"}},"source":{{"ip":"{ip}"}}}}"#
                );
                sent.push((t * 1_000_000, u, ip, h, a, line.clone()));
                lines.push(line);
            }
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            s.insert(Uuid::new_v4(), seq, &batch(&refs), 0).unwrap();
            match seq {
                14 => s.flush_terms().unwrap(),
                27 => {
                    // A crash: the held-back entries of batches 15..=27 are never written.
                    assert!(s.has_pending_terms());
                    std::mem::forget(s);
                    s = Store::open(&path).unwrap();
                }
                _ => {}
            }
        }
        assert!(s.has_pending_terms());
        let (upto, indexed): (i64, i64) = s
            .conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'terms_upto'), \
                 (SELECT count(DISTINCT batch) FROM terms)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((upto, indexed), (28, 28), "batches 1..=28 are in terms");
        for round in 0..300 {
            let pick = |k: u64, v: &[&str]| {
                k.is_multiple_of(2)
                    .then(|| v[(k / 2) as usize % v.len()].to_owned())
            };
            let f = Filter {
                since_us: (round % 3 == 0)
                    .then(|| (1_767_225_600 + next(3_000) as i64) * 1_000_000),
                until_us: (round % 4 == 1)
                    .then(|| (1_767_225_600 + next(3_000) as i64) * 1_000_000),
                user: pick(next(6), &users),
                source_ip: pick(next(8), &ips),
                host: pick(next(4), &hosts),
                action: pick(next(6), &actions),
                limit: 1 + next(60),
                documents: true,
            };
            // Oldest first, ties in the order stored (the store's row order).
            let mut want: Vec<_> = sent
                .iter()
                .enumerate()
                .filter(|(_, (t, u, ip, h, a, _))| {
                    f.since_us.is_none_or(|s| *t >= s)
                        && f.until_us.is_none_or(|u| *t <= u)
                        && f.user.as_deref().is_none_or(|x| x == *u)
                        && f.source_ip.as_deref().is_none_or(|x| x == *ip)
                        && f.host.as_deref().is_none_or(|x| x == *h)
                        && f.action.as_deref().is_none_or(|x| x == *a)
                })
                .collect();
            want.sort_by_key(|(i, (t, ..))| (*t, *i));
            let keep = want.len().saturating_sub(f.limit as usize);
            let want: Vec<&str> = want[keep..].iter().map(|(_, e)| e.5.as_str()).collect();
            let got: Vec<String> = s
                .query(&f)
                .unwrap()
                .into_iter()
                .map(|r| r.doc.unwrap())
                .collect();
            assert_eq!(got, want, "{f:?}");
        }
    }

    #[test]
    fn held_back_terms_are_written_once_they_pass_their_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db")).unwrap();
        // One batch of distinct user names: far fewer batches than TERMS_FLUSH_BATCHES, but
        // more bytes of entries than TERMS_FLUSH_BYTES.
        let name = "u".repeat(100);
        let n = TERMS_FLUSH_BYTES / (TERM_ENTRY_BYTES + name.len() + 8) + 100;
        let body: String = (0..n)
            .map(|i| {
                format!(
                    r#"{{"@timestamp":"2026-11-28T08:06:35Z","event":{{"kind":"event","action":"auth_failure"}},"user":{{"name":"{name}{i:08}"}}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let b = decode(Encoding::Identity, body.into_bytes(), 64 << 20, None).unwrap();
        assert_eq!(b.event_count, n);
        s.insert(Uuid::new_v4(), 1, &b, 0).unwrap();
        assert!(
            !s.has_pending_terms(),
            "{} bytes held back",
            s.pending.bytes
        );
        // A small batch is held back as before.
        let e = ev("2026-01-01T00:00:00Z", "h1", "auth_failure", "10.0.0.1");
        s.insert(Uuid::new_v4(), 1, &batch(&[&e]), 0).unwrap();
        assert!(s.has_pending_terms());
    }

    #[test]
    fn every_connection_has_a_bounded_page_cache_and_no_mmap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let pragma = |s: &Store, name: &str| -> i64 {
            s.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        let w = Store::open(&path).unwrap();
        assert_eq!(pragma(&w, "cache_size"), -CACHE_KIB);
        assert_eq!(pragma(&w, "mmap_size"), MMAP_BYTES);
        let r = Store::open_read_only(&path).unwrap();
        assert_eq!(pragma(&r, "cache_size"), -READ_CACHE_KIB);
        assert_eq!(pragma(&r, "mmap_size"), MMAP_BYTES);
        let a = Store::open(&path).unwrap();
        a.set_cache_kib(READ_CACHE_KIB).unwrap();
        assert_eq!(pragma(&a, "cache_size"), -READ_CACHE_KIB);
    }
}
