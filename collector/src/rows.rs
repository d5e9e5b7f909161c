//! A batch's event rows as the store keeps them: one value per batch (`batches.rows`), not one
//! SQLite row per event.
//!
//! Each event's shown columns (time, host, kind, action, outcome, users, source, process,
//! method) and the place of its line in the batch's body. The strings are kept once per batch
//! in a table (a batch's thousands of events share a few hosts, actions and users) and a
//! column holds an index into it; times are offsets from the batch's earliest. Encoded with
//! postcard (variable-length integers), so a row is about 24 bytes.
//!
//! Why not a row per event: on a 1M-event backlog the writer spent 1.5 of its 2.5 CPU-seconds
//! inserting event rows and their time index (SQLite's per-row cost is about 1.3 µs), on the one
//! thread every batch passes through. Encoding is done by the decoding threads, in parallel;
//! reading a batch's rows back costs about 30 ns per event.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ingest::{Event, Reserve};

/// Format version, the first field of every encoded value.
const VERSION: u32 = 1;

/// [`Row::columns`] index of `host.hostname`.
pub(crate) const HOST: usize = 0;
/// ... of `event.kind`.
pub(crate) const KIND: usize = 1;
/// ... of `event.action`.
pub(crate) const ACTION: usize = 2;
/// ... of `event.outcome`.
pub(crate) const OUTCOME: usize = 3;
/// ... of `user.name`.
pub(crate) const USER: usize = 4;
/// ... of `user.target.name`.
pub(crate) const TARGET_USER: usize = 5;
/// ... of `source.ip`.
pub(crate) const SOURCE_IP: usize = 6;
/// ... of `process.name`.
pub(crate) const PROCESS: usize = 7;
/// ... of `authtrail.method`.
pub(crate) const METHOD: usize = 8;
/// The string columns of a [`Row`].
pub(crate) const COLUMNS: usize = 9;

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Microseconds after [`Rows::base_time`].
    pub time: u64,
    /// The line's start in the batch's decompressed body.
    pub line_start: u64,
    /// The line's length.
    pub line_len: u64,
    /// The string columns ([`HOST`] to [`METHOD`]): 0 when the event has no value, else the
    /// value's index in [`Rows`]'s table plus one.
    pub columns: [u32; COLUMNS],
    /// `source.port`.
    pub source_port: Option<u16>,
}

/// A batch's rows, decoded (the strings borrow from the encoded bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rows<'a> {
    version: u32,
    /// The earliest event's time, µs since the epoch.
    pub base_time: i64,
    #[serde(borrow)]
    strings: Vec<&'a str>,
    /// In body order.
    pub rows: Vec<Row>,
}

/// Stored rows that do not decode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RowsError(String);

impl<'a> Rows<'a> {
    /// Decodes [`encode`]'s bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Rows<'a>, RowsError> {
        let rows: Rows<'a> =
            postcard::from_bytes(bytes).map_err(|e| RowsError(format!("event rows: {e}")))?;
        if rows.version != VERSION {
            return Err(RowsError(format!(
                "event rows in format {}, this collector reads {VERSION}",
                rows.version
            )));
        }
        let n = rows.strings.len() as u64;
        if let Some(bad) = rows.rows.iter().find(|r| {
            r.columns.iter().any(|&c| u64::from(c) > n)
                || r.line_start.checked_add(r.line_len).is_none()
        }) {
            return Err(RowsError(format!(
                "event row {bad:?} points outside its batch"
            )));
        }
        Ok(rows)
    }

    /// How many strings encoded rows hold and their bytes, read without allocating (the rows
    /// are not decoded); what could be read, for rows that do not decode.
    pub(crate) fn string_stats(bytes: &[u8]) -> (usize, usize) {
        let Ok((_, rest)) = postcard::take_from_bytes::<(u32, i64)>(bytes) else {
            return (0, 0);
        };
        let Ok((n, mut rest)) = postcard::take_from_bytes::<usize>(rest) else {
            return (0, 0);
        };
        let (mut count, mut len) = (0, 0);
        while count < n {
            let Ok((s, next)) = postcard::take_from_bytes::<&str>(rest) else {
                break;
            };
            (count, len, rest) = (count + 1, len + s.len(), next);
        }
        (count, len)
    }

    /// The string a column holds.
    pub(crate) fn text(&self, code: u32) -> Option<&'a str> {
        code.checked_sub(1)
            .and_then(|i| self.strings.get(i as usize))
            .copied()
    }

    /// The code `value` has in this batch; `None` when no event of the batch holds it.
    pub(crate) fn code(&self, value: &str) -> Option<u32> {
        self.strings
            .iter()
            .position(|s| *s == value)
            .map(|i| i as u32 + 1)
    }

    /// A row's time, µs since the epoch.
    pub(crate) fn time(&self, row: &Row) -> i64 {
        i64::try_from(i128::from(self.base_time) + i128::from(row.time)).unwrap_or(i64::MAX)
    }

    /// A row as an [`Event`] (owned strings).
    pub(crate) fn event(&self, row: &Row) -> Event {
        let text = |column: usize| self.text(row.columns[column]).map(str::to_owned);
        let start = usize::try_from(row.line_start).unwrap_or(usize::MAX);
        let len = usize::try_from(row.line_len).unwrap_or(0);
        Event {
            timestamp_us: self.time(row),
            host: text(HOST),
            kind: text(KIND),
            action: text(ACTION),
            outcome: text(OUTCOME),
            user: text(USER),
            target_user: text(TARGET_USER),
            source_ip: text(SOURCE_IP),
            source_port: row.source_port,
            process: text(PROCESS),
            method: text(METHOD),
            line: start..start.saturating_add(len),
        }
    }
}

/// An event's columns as [`Builder::push`] takes them, borrowed; also their JSON form (the
/// console's API), one place for both.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[allow(missing_docs)] // The columns of `ingest::Event`.
pub struct EventRef<'a> {
    pub timestamp_us: i64,
    pub host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub action: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub user: Option<&'a str>,
    pub target_user: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub source_port: Option<u16>,
    pub process: Option<&'a str>,
    pub method: Option<&'a str>,
    #[serde(skip)]
    pub line: std::ops::Range<usize>,
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(e: &'a Event) -> EventRef<'a> {
        EventRef {
            timestamp_us: e.timestamp_us,
            host: e.host.as_deref(),
            kind: e.kind.as_deref(),
            action: e.action.as_deref(),
            outcome: e.outcome.as_deref(),
            user: e.user.as_deref(),
            target_user: e.target_user.as_deref(),
            source_ip: e.source_ip.as_deref(),
            source_port: e.source_port,
            process: e.process.as_deref(),
            method: e.method.as_deref(),
            line: e.line.clone(),
        }
    }
}

/// Encodes a batch's rows one event at a time, copying each distinct string once.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    strings: Vec<String>,
    codes: HashMap<String, u32>,
    rows: Vec<Row>,
    /// Each row's absolute time (the offsets need the earliest, known at the end).
    times: Vec<i64>,
    /// Each column's last code: consecutive events mostly repeat host, kind, process...
    last: [u32; COLUMNS],
    last_host: Option<u32>,
    /// Bytes of the byte budget this builder's buffers hold ([`Builder::push_within`]).
    granted: u64,
    /// For each string, a bit for each column it is a value of.
    columns_of: Vec<u16>,
    /// Distinct values of each column.
    values: [u32; COLUMNS],
}

/// Bytes of one event's room in a [`Builder`]: its row and its absolute time.
const ROOM_BYTES_PER_EVENT: u64 = (size_of::<Row>() + size_of::<i64>()) as u64;

/// Makes room in `v` for `more` items (at least doubling), granted by `memory` first: while it
/// moves, the old block (granted already) and the new one are both held; the old one is given
/// back after. Ok holds the bytes the growth added; Err the bytes refused.
fn grow_within<T>(v: &mut Vec<T>, more: usize, memory: &mut dyn Reserve) -> Result<u64, u64> {
    if v.len() + more <= v.capacity() {
        return Ok(0);
    }
    let old = v.capacity();
    let new = (old * 2).max(v.len() + more).max(16);
    let size = size_of::<T>() as u64;
    let wanted = new as u64 * size;
    if !memory.grow(wanted) {
        return Err(wanted);
    }
    v.reserve_exact(new - v.len());
    memory.release(old as u64 * size);
    Ok((new - old) as u64 * size)
}

/// Bytes of the table of a `HashMap<String, u32>` that holds `capacity` entries: its buckets
/// (hashbrown's: a power of two, at most 7/8 full) and a control byte per bucket and group.
fn map_bytes(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        if capacity < 4 { 4 } else { 8 }
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    (buckets * (size_of::<(String, u32)>() + 1) + 16) as u64
}

/// Makes room in `map` for `more` entries (at least doubling), granted as [`grow_within`]
/// does.
fn grow_map_within(
    map: &mut HashMap<String, u32>,
    more: usize,
    memory: &mut dyn Reserve,
) -> Result<u64, u64> {
    if map.len() + more <= map.capacity() {
        return Ok(0);
    }
    let old = map_bytes(map.capacity());
    let target = (map.capacity() * 2).max(map.len() + more);
    // hashbrown sizes the table from the capacity asked for as `map_bytes` does; should it
    // take less, the difference is given back once the real table is known.
    let wanted = map_bytes(target);
    if !memory.grow(wanted) {
        return Err(wanted);
    }
    map.reserve(target - map.len());
    let new = map_bytes(map.capacity());
    memory.release(old + wanted.saturating_sub(new));
    Ok(new.saturating_sub(old))
}

/// A string's heap block, as the allocator rounds it (8-byte steps for small blocks, an eighth
/// at most for larger ones).
fn block_bytes(len: usize) -> u64 {
    let len = len as u64;
    if len == 0 {
        0
    } else if len <= 128 {
        len.div_ceil(8) * 8
    } else {
        len + len / 8
    }
}

impl Builder {
    /// Bytes [`Builder::with_room`] allocates for `events` events (granted by the caller).
    pub(crate) fn room_bytes(events: usize) -> u64 {
        events as u64 * ROOM_BYTES_PER_EVENT
    }

    /// A builder with room for `events` events allocated at once ([`Builder::room_bytes`],
    /// which the caller has granted and which [`Builder::finish_within`] gives back).
    pub(crate) fn with_room(events: usize) -> Builder {
        Builder {
            rows: Vec::with_capacity(events),
            times: Vec::with_capacity(events),
            granted: Builder::room_bytes(events),
            ..Builder::default()
        }
    }

    /// [`Builder::push`], asking `memory` first for what the event's new strings and any
    /// growth of the rows will hold. Err holds the bytes refused; the event is not added.
    pub(crate) fn push_within(
        &mut self,
        e: &EventRef<'_>,
        memory: &mut dyn Reserve,
    ) -> Result<(), u64> {
        // The event's new strings: two copies each (the list's and the map's key).
        let (mut wanted, mut new) = (0u64, 0usize);
        for (column, value) in e.columns().into_iter().enumerate() {
            let Some(v) = value else { continue };
            let last = self.last[column];
            if (last != 0 && self.strings[last as usize - 1] == v) || self.codes.contains_key(v) {
                continue;
            }
            wanted += 2 * block_bytes(v.len());
            new += 1;
        }
        if wanted > 0 {
            if !memory.grow(wanted) {
                return Err(wanted);
            }
            self.granted += wanted;
            self.granted += grow_within(&mut self.strings, new, memory)?;
            self.granted += grow_within(&mut self.columns_of, new, memory)?;
            self.granted += grow_map_within(&mut self.codes, new, memory)?;
        }
        self.granted += grow_within(&mut self.rows, 1, memory)?;
        self.granted += grow_within(&mut self.times, 1, memory)?;
        self.push(e);
        Ok(())
    }

    /// Adds an event (in body order).
    pub(crate) fn push(&mut self, e: &EventRef<'_>) {
        let values = e.columns();
        let mut columns = [0u32; COLUMNS];
        for (column, value) in values.into_iter().enumerate() {
            let Some(v) = value else { continue };
            let last = self.last[column];
            columns[column] = if last != 0 && self.strings[last as usize - 1] == v {
                last
            } else {
                let code = match self.codes.get(v) {
                    Some(&code) => code,
                    None => {
                        self.strings.push(v.to_owned());
                        self.columns_of.push(0);
                        let code = self.strings.len() as u32;
                        self.codes.insert(v.to_owned(), code);
                        code
                    }
                };
                let (bit, of) = (1 << column, &mut self.columns_of[code as usize - 1]);
                if *of & bit == 0 {
                    *of |= bit;
                    self.values[column] += 1;
                }
                self.last[column] = code;
                code
            };
        }
        if columns[HOST] != 0 {
            self.last_host = Some(columns[HOST]);
        }
        self.times.push(e.timestamp_us);
        self.rows.push(Row {
            time: 0,
            line_start: e.line.start as u64,
            line_len: e.line.len() as u64,
            columns,
            source_port: e.source_port,
        });
    }

    /// How many distinct values each column has ([`HOST`] to [`METHOD`]).
    pub(crate) fn values(&self) -> [u32; COLUMNS] {
        self.values
    }

    /// Events pushed so far.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The `host.hostname` of the last event that has one.
    pub(crate) fn last_host(&self) -> Option<&str> {
        self.last_host
            .map(|code| self.strings[code as usize - 1].as_str())
    }

    /// The encoded rows; empty when no event was pushed.
    #[cfg(test)]
    pub(crate) fn finish(self) -> Vec<u8> {
        self.finish_within(&mut crate::ingest::Unbounded)
            .unwrap_or_default()
    }

    /// The encoded rows, in a buffer of exactly their size granted by `memory` first; then
    /// everything else this builder was granted is given back (the encoded rows' bytes stay
    /// granted). Err holds the bytes refused.
    pub(crate) fn finish_within(mut self, memory: &mut dyn Reserve) -> Result<Vec<u8>, u64> {
        let granted = self.granted;
        let Some(base_time) = self.times.iter().copied().min() else {
            memory.release(granted);
            return Ok(Vec::new());
        };
        for (row, t) in self.rows.iter_mut().zip(&self.times) {
            row.time = t.abs_diff(base_time);
        }
        // The list of the strings, borrowed, and the encoding: granted before they are made.
        let list = (self.strings.len() * size_of::<&str>()) as u64;
        if !memory.grow(list) {
            return Err(list);
        }
        let encoded = Rows {
            version: VERSION,
            base_time,
            strings: self.strings.iter().map(String::as_str).collect(),
            rows: self.rows,
        };
        let size = postcard::experimental::serialized_size(&encoded).expect("sizing cannot fail");
        if !memory.grow(size as u64) {
            memory.release(list);
            return Err(size as u64);
        }
        let out = postcard::to_extend(&encoded, Vec::with_capacity(size))
            .expect("serializing into a Vec cannot fail");
        memory.release(granted + list);
        Ok(out)
    }
}

impl EventRef<'_> {
    /// The string columns, in the order of [`HOST`] to [`METHOD`].
    fn columns(&self) -> [Option<&str>; COLUMNS] {
        [
            self.host,
            self.kind,
            self.action,
            self.outcome,
            self.user,
            self.target_user,
            self.source_ip,
            self.process,
            self.method,
        ]
    }
}

/// Encodes `events` (in body order). Empty for no events.
#[cfg(test)]
pub(crate) fn encode(events: &[Event]) -> Vec<u8> {
    let mut b = Builder::default();
    for e in events {
        b.push(&e.into());
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: i64, user: Option<&str>, ip: Option<&str>, line: std::ops::Range<usize>) -> Event {
        Event {
            timestamp_us: t,
            host: Some("h1".to_owned()),
            kind: Some("event".to_owned()),
            action: Some("auth_failure".to_owned()),
            outcome: None,
            user: user.map(str::to_owned),
            target_user: None,
            source_ip: ip.map(str::to_owned),
            source_port: Some(22),
            process: Some("sshd".to_owned()),
            method: None,
            line,
        }
    }

    #[test]
    fn rows_round_trip_and_share_strings() {
        let events = vec![
            event(1_700_000_000_000_005, Some("root"), Some("10.0.0.1"), 0..10),
            event(-5, Some("h1"), None, 11..30),
            event(i64::MAX, None, Some("10.0.0.1"), 31..31),
        ];
        let bytes = encode(&events);
        let rows = Rows::decode(&bytes).unwrap();
        let back: Vec<Event> = rows.rows.iter().map(|r| rows.event(r)).collect();
        assert_eq!(back, events);
        // "h1" as host and as user is one string; so is the address.
        assert_eq!(rows.strings.len(), 6, "{:?}", rows.strings);
        assert_eq!(
            rows.code("10.0.0.1").and_then(|c| rows.text(c)),
            Some("10.0.0.1")
        );
        assert_eq!(rows.code("nobody"), None);
        assert!(encode(&[]).is_empty());
    }

    #[test]
    fn many_rows_with_repeated_and_shared_values_round_trip() {
        // Values repeat in a column, switch back and forth, are absent, and are shared between
        // columns: the builder's memory of each column's last value must never leak across.
        let values = [None, Some("a"), Some("b"), Some("root"), Some("10.0.0.1")];
        let mut x = 0x9e37_79b9_u32;
        let mut pick = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values[(x % values.len() as u32) as usize].map(str::to_owned)
        };
        let events: Vec<Event> = (0..500)
            .map(|i| Event {
                timestamp_us: 1_000_000 - i * 7,
                host: pick(),
                kind: pick(),
                action: pick(),
                outcome: pick(),
                user: pick(),
                target_user: pick(),
                source_ip: pick(),
                source_port: (i % 3 != 0).then_some(i as u16),
                process: pick(),
                method: pick(),
                line: i as usize * 10..i as usize * 10 + 9,
            })
            .collect();
        let bytes = encode(&events);
        let rows = Rows::decode(&bytes).unwrap();
        let back: Vec<Event> = rows.rows.iter().map(|r| rows.event(r)).collect();
        assert_eq!(back, events);
        assert_eq!(rows.strings.len(), 4);
    }

    #[test]
    fn damaged_rows_are_refused() {
        let bytes = encode(&[event(1, Some("root"), None, 0..4)]);
        for cut in 0..bytes.len() {
            assert!(Rows::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = Rows::decode(&bytes).unwrap();
        bad.rows[0].columns[USER] = 99;
        let bad = postcard::to_allocvec(&bad).unwrap();
        assert!(Rows::decode(&bad).is_err());
        let mut newer = Rows::decode(&bytes).unwrap();
        newer.version = 2;
        let newer = postcard::to_allocvec(&newer).unwrap();
        assert!(
            Rows::decode(&newer)
                .unwrap_err()
                .to_string()
                .contains("format 2")
        );
    }
}
