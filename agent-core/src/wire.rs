//! The wire contract between the agent and the collector: one definition that both sides
//! import, so that what the agent sends and what the collector accepts cannot drift apart.
//!
//! ```text
//! POST /v1/batches
//! Authtrail-Agent-Id: <agent UUID>          (the authenticated identity must match)
//! Authtrail-Stream: <random id>             (made with the sequence counter)
//! Authtrail-Batch-Seq: <0..=2^63-1>         (per stream, never reused)
//! Authtrail-Schema: 1
//! Content-Type: application/vnd.authtrail.batch | application/x-ndjson
//! Content-Encoding: zstd | gzip | (none)
//! <the compact batch body (crate::batch), or one ECS JSON object per line>
//! ```
//!
//! Both bodies carry the same documents: the compact one renders, byte for byte, to the
//! NDJSON an agent would have sent. An event's *line number* is its index in the batch
//! (1-based, as the collector lists refused events), whichever body carried it.
//!
//! A batch is identified by (agent id, stream, seq). The answers: `200` stored, also for an
//! identical re-send (with the events the contract refused, one by one, by line number);
//! `409` for a known key whose content differs (the agent keeps the batch and sends it again
//! under a new stream); `400` only for a body that cannot be read at all; `401`/`403`
//! credentials; `413` too large (the agent splits); `429`/`503` later, with `Retry-After`.
//!
//! Per event, the contract says what an event may hold ([`EventFields::check`]): the fields
//! the collector reads back ([`FIELDS`]), which are required, which values an enumerated field
//! may take, the range of `@timestamp` and the size of a text field. The agent makes every
//! event conform before it emits it ([`conform`]): a time outside the range becomes the time
//! of receipt (the line's own time is kept beside it), an over-long text field is cut.
//!
//! No I/O, no clock, no allocation: the collector passes the fields it parsed, the agent the
//! event it rendered and the time it read the line.

use crate::event::{Action, LoginEvent, Method, Outcome};
use crate::text::Text;
use crate::time::Timestamp;

/// The batch endpoint.
pub const BATCHES_PATH: &str = "/v1/batches";
/// Header: the agent's UUID (kept in the agent's state directory).
pub const AGENT_ID_HEADER: &str = "Authtrail-Agent-Id";
/// Header: the batch's stream, a random id made together with the sequence counter (see
/// [`is_stream`]). A state directory that is lost or reset starts a new stream, so a sequence
/// number is never reused for other content.
pub const STREAM_HEADER: &str = "Authtrail-Stream";
/// Header: the batch's sequence number in its stream, 0 to [`MAX_SEQ`].
pub const BATCH_SEQ_HEADER: &str = "Authtrail-Batch-Seq";
/// Header: the event schema version.
pub const SCHEMA_HEADER: &str = "Authtrail-Schema";
/// Answer header beside `Retry-After` (whole seconds, at least 1, as RFC 9110 allows): the
/// suggested wait in milliseconds, since the collector's drain time is usually hundreds of them.
/// An agent prefers it to `Retry-After`. Written in lower case, as HTTP/2 and `http` spell
/// header names.
pub const RETRY_AFTER_MS_HEADER: &str = "authtrail-retry-after-ms";
/// The event schema version both sides speak.
pub const SCHEMA_VERSION: &str = "1";
/// `Content-Type` of a batch body of ECS NDJSON.
pub const CONTENT_TYPE_NDJSON: &str = "application/x-ndjson";
/// `Content-Type` of a compact batch body (`crate::batch`, version in its first bytes).
pub const CONTENT_TYPE_BATCH: &str = "application/vnd.authtrail.batch";
/// `Content-Type` of the collector's answer to a batch.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Largest sequence number (the collector keeps it as a signed 64-bit integer).
pub(crate) const MAX_SEQ: u64 = i64::MAX as u64;
/// Longest stream id, bytes.
pub const MAX_STREAM_BYTES: usize = 64;

/// Most rejected events the collector lists by line in one answer; beyond this they are only
/// counted (`rejected` in the answer), and the agent keeps the whole batch aside.
pub const MAX_REJECTIONS_LISTED: usize = 1000;

/// Earliest `@timestamp` accepted: 2000-01-01T00:00:00Z, in microseconds since the Unix epoch.
/// Earlier times come from clocks that were never set (1970 on a board without a real-time
/// clock), not from logins.
pub(crate) const MIN_EVENT_TIME_US: i64 = 946_684_800_000_000;
/// First `@timestamp` no longer accepted: 2100-01-01T00:00:00Z, in microseconds. Later times
/// are typos or attacks (`9999-12-31T23:59:59`), never logins.
pub(crate) const MAX_EVENT_TIME_US: i64 = 4_102_444_800_000_000;
/// Longest text field the collector indexes (`host.hostname`, `user.name`, `user.target.name`,
/// `process.name`), bytes of UTF-8 after JSON unescaping. A longer one is not a name.
pub(crate) const MAX_FIELD_BYTES: usize = 4096;

/// A batch body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No header, or `identity`.
    Identity,
    /// `zstd` (the agent's default).
    Zstd,
    /// `gzip` (also `x-gzip`); several concatenated members are read as one stream.
    Gzip,
}

impl Encoding {
    /// The header value, `None` for identity (no header is sent).
    pub const fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Zstd => Some("zstd"),
            Encoding::Gzip => Some("gzip"),
        }
    }

    /// From the header value (absent means identity), ignoring ASCII case and surrounding
    /// white space. `None` for anything else, including a list of several codings.
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        let Some(v) = value.map(str::trim) else {
            return Some(Encoding::Identity);
        };
        let is = |name: &str| v.eq_ignore_ascii_case(name);
        if v.is_empty() || is("identity") {
            Some(Encoding::Identity)
        } else if is("zstd") {
            Some(Encoding::Zstd)
        } else if is("gzip") || is("x-gzip") {
            Some(Encoding::Gzip)
        } else {
            None
        }
    }
}

/// What a batch body is (its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// ECS NDJSON, one document a line ([`CONTENT_TYPE_NDJSON`]).
    #[default]
    Ndjson,
    /// The compact batch body ([`CONTENT_TYPE_BATCH`]).
    Compact,
}

impl Body {
    /// The `Content-Type` header value.
    pub const fn content_type(self) -> &'static str {
        match self {
            Body::Ndjson => CONTENT_TYPE_NDJSON,
            Body::Compact => CONTENT_TYPE_BATCH,
        }
    }

    /// From a `Content-Type` value (parameters and ASCII case ignored); absent means NDJSON,
    /// as older agents and third-party senders may not say. `None` for another type.
    pub fn from_content_type(value: Option<&str>) -> Option<Body> {
        let Some(v) = value else {
            return Some(Body::Ndjson);
        };
        let v = v.split(';').next().unwrap_or("").trim();
        if v.eq_ignore_ascii_case(CONTENT_TYPE_BATCH) {
            Some(Body::Compact)
        } else if v.is_empty()
            || v.eq_ignore_ascii_case(CONTENT_TYPE_NDJSON)
            || v.eq_ignore_ascii_case("application/json")
        {
            Some(Body::Ndjson)
        } else {
            None
        }
    }
}

/// Whether `s` is a valid stream id: 1 to [`MAX_STREAM_BYTES`] ASCII letters, digits or `-`
/// (the agent makes a UUID).
pub fn is_stream(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_STREAM_BYTES
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Reads an `Authtrail-Batch-Seq` value: decimal, 0 to [`MAX_SEQ`].
pub fn parse_seq(s: &str) -> Option<u64> {
    s.parse::<u64>().ok().filter(|&n| n <= MAX_SEQ)
}

/// Header on every batch (heartbeats included): the agent's spool backlog when it sent the
/// batch, `batches=N, bytes=N, lag-ms=N` ([`SpoolBacklog`]). Optional: a collector that does not
/// know it ignores it, and one that cannot read it ignores it too (the batch is not refused for
/// a gauge). A header rather than a heartbeat field because heartbeats go only when the spool
/// is empty, while a backlog is what every batch sent during one can report.
pub const SPOOL_BACKLOG_HEADER: &str = "Authtrail-Spool-Backlog";

/// The agent's spool backlog ([`SPOOL_BACKLOG_HEADER`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolBacklog {
    /// Batches waiting in the spool, the one being sent included.
    pub batches: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// How long the spool has not been empty, milliseconds (0 when it holds only this batch
    /// since it was last empty): an upper bound on the age of the oldest batch waiting.
    pub lag_ms: u64,
}

impl core::fmt::Display for SpoolBacklog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "batches={}, bytes={}, lag-ms={}",
            self.batches, self.bytes, self.lag_ms
        )
    }
}

impl SpoolBacklog {
    /// Reads the header's value: the three keys once each, in any order, comma-separated,
    /// spaces allowed around items; unknown keys are skipped (room to add some). `None` when a
    /// key is missing, repeated or not a whole number.
    pub fn parse(s: &str) -> Option<SpoolBacklog> {
        let (mut batches, mut bytes, mut lag) = (None, None, None);
        for item in s.split(',') {
            let (k, v) = item.trim().split_once('=')?;
            let slot = match k.trim() {
                "batches" => &mut batches,
                "bytes" => &mut bytes,
                "lag-ms" => &mut lag,
                _ => continue,
            };
            if slot.replace(v.trim().parse::<u64>().ok()?).is_some() {
                return None;
            }
        }
        Some(SpoolBacklog {
            batches: batches?,
            bytes: bytes?,
            lag_ms: lag?,
        })
    }
}

/// One field the collector reads back from an event: its dotted ECS path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field(pub &'static str);

/// `@timestamp` (RFC 3339; required).
pub const TIMESTAMP: Field = Field("@timestamp");
/// `event.kind`: `event` or `alert` (required; `state` is the agent's heartbeat).
pub const EVENT_KIND: Field = Field("event.kind");
/// `event.action` (required): one of [`Action`] for events, a rule name for alerts.
pub const EVENT_ACTION: Field = Field("event.action");
/// `event.outcome`: `success`, `failure` or `unknown`.
pub const EVENT_OUTCOME: Field = Field("event.outcome");
/// `host.hostname` (the agent's own report; shown under its authenticated id).
pub const HOST_NAME: Field = Field("host.hostname");
/// `agent.id`: when present, the authenticated agent's UUID.
pub const AGENT_ID: Field = Field("agent.id");
/// `user.name`.
pub const USER_NAME: Field = Field("user.name");
/// `user.target.name`.
pub const TARGET_NAME: Field = Field("user.target.name");
/// `source.ip` (an IP address).
pub const SOURCE_IP: Field = Field("source.ip");
/// `source.port` (0 to 65535).
pub(crate) const SOURCE_PORT: Field = Field("source.port");
/// `process.name`.
pub const PROCESS_NAME: Field = Field("process.name");
/// `authtrail.method`: one of [`Method`].
pub const METHOD: Field = Field("authtrail.method");

/// Every field the collector reads back from an event; it skips the others unread.
pub const FIELDS: [Field; 12] = [
    TIMESTAMP,
    EVENT_KIND,
    EVENT_ACTION,
    EVENT_OUTCOME,
    HOST_NAME,
    AGENT_ID,
    USER_NAME,
    TARGET_NAME,
    SOURCE_IP,
    SOURCE_PORT,
    PROCESS_NAME,
    METHOD,
];

/// `event.kind` of a login event.
pub(crate) const KIND_EVENT: &str = "event";
/// `event.kind` of a detection alert.
pub(crate) const KIND_ALERT: &str = "alert";
/// `event.kind` of the agent's heartbeat (host facts, no event).
pub const KIND_STATE: &str = "state";

/// Longest alert rule name (`event.action` of an alert), bytes.
pub(crate) const MAX_RULE_BYTES: usize = 64;

/// The text fields of one event as the collector read them (strings unescaped), and its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventFields<'a> {
    /// `@timestamp` in microseconds since the Unix epoch; `None` when absent.
    pub timestamp_us: Option<i64>,
    /// `event.kind`.
    pub kind: Option<&'a str>,
    /// `event.action`.
    pub action: Option<&'a str>,
    /// `event.outcome`.
    pub outcome: Option<&'a str>,
    /// `host.hostname`.
    pub host: Option<&'a str>,
    /// `user.name`.
    pub user: Option<&'a str>,
    /// `user.target.name`.
    pub target_user: Option<&'a str>,
    /// `process.name`.
    pub process: Option<&'a str>,
    /// `authtrail.method`.
    pub method: Option<&'a str>,
}

/// Why an event breaks the contract. Carries no copy of the event (it can hold a password
/// typed as a user name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A required field is absent.
    Missing(Field),
    /// An enumerated field holds a value outside its list.
    NotAllowed(Field),
    /// `@timestamp` is outside [`MIN_EVENT_TIME_US`]..[`MAX_EVENT_TIME_US`].
    TimeOutOfRange,
    /// A text field is longer than [`MAX_FIELD_BYTES`].
    TooLong(Field),
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Violation::Missing(field) => write!(f, "`{}` is missing", field.0),
            Violation::NotAllowed(field) => {
                write!(f, "`{}` holds a value the schema does not have", field.0)
            }
            Violation::TimeOutOfRange => {
                f.write_str("`@timestamp` is outside 2000-01-01T00:00:00Z..2100-01-01T00:00:00Z")
            }
            Violation::TooLong(field) => {
                write!(f, "`{}` is longer than {MAX_FIELD_BYTES} bytes", field.0)
            }
        }
    }
}

impl core::error::Error for Violation {}

/// Whether `us` (microseconds since the epoch) is an acceptable `@timestamp`.
pub(crate) const fn time_in_range(us: i64) -> bool {
    us >= MIN_EVENT_TIME_US && us < MAX_EVENT_TIME_US
}

/// A rule name: 1 to [`MAX_RULE_BYTES`] of `a-z`, `0-9`, `_` (alerts from newer agents carry
/// rules this collector does not know by name; they are kept).
fn is_rule_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_RULE_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Every `event.action` value a login event may hold.
pub(crate) fn is_event_action(s: &str) -> bool {
    Action::from_str_exact(s).is_some()
}

impl EventFields<'_> {
    /// Checks one event (`event.kind` `event` or `alert`) against the contract.
    pub fn check(&self) -> Result<(), Violation> {
        let ts = self.timestamp_us.ok_or(Violation::Missing(TIMESTAMP))?;
        if !time_in_range(ts) {
            return Err(Violation::TimeOutOfRange);
        }
        let kind = self.kind.ok_or(Violation::Missing(EVENT_KIND))?;
        let action = self.action.ok_or(Violation::Missing(EVENT_ACTION))?;
        let action_ok = match kind {
            KIND_EVENT => is_event_action(action),
            KIND_ALERT => is_rule_name(action),
            _ => return Err(Violation::NotAllowed(EVENT_KIND)),
        };
        if !action_ok {
            return Err(Violation::NotAllowed(EVENT_ACTION));
        }
        if let Some(o) = self.outcome
            && ![Outcome::Success, Outcome::Failure, Outcome::Unknown]
                .iter()
                .any(|x| x.as_str() == o)
        {
            return Err(Violation::NotAllowed(EVENT_OUTCOME));
        }
        if let Some(m) = self.method
            && !Method::ALL.iter().any(|x| x.as_str() == m)
        {
            return Err(Violation::NotAllowed(METHOD));
        }
        for (field, value) in [
            (HOST_NAME, self.host),
            (USER_NAME, self.user),
            (TARGET_NAME, self.target_user),
            (PROCESS_NAME, self.process),
        ] {
            if value.is_some_and(|v| v.len() > MAX_FIELD_BYTES) {
                return Err(Violation::TooLong(field));
            }
        }
        Ok(())
    }
}

/// What [`conform`] changed in an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conformed {
    /// The line's own time, when it was outside the contract's range and `@timestamp` became
    /// the time of receipt instead. The agent writes it as `authtrail.original_timestamp`.
    pub original_timestamp: Option<Timestamp>,
    /// Text fields cut to [`MAX_FIELD_BYTES`].
    pub truncated_fields: u8,
}

/// Makes `ev` conform to the contract before it is written: a missing time or one outside the
/// range becomes `received` (the time the agent read the line; the original is returned), and
/// each indexed text field is cut to at most [`MAX_FIELD_BYTES`] once written as UTF-8
/// (invalid bytes become U+FFFD, three bytes each).
pub fn conform(ev: &mut LoginEvent<'_>, received: Timestamp) -> Conformed {
    let mut out = Conformed::default();
    match ev.timestamp {
        Some(ts) if time_in_range(ts.as_micros()) => {}
        Some(ts) => {
            out.original_timestamp = Some(ts);
            ev.timestamp = Some(received);
        }
        None => ev.timestamp = Some(received),
    }
    for field in [&mut ev.hostname, &mut ev.user, &mut ev.target_user] {
        if let Some(text) = field
            && let Some(cut) = cut_to_fit(*text)
        {
            *text = cut;
            out.truncated_fields += 1;
        }
    }
    if let Some(cut) = cut_to_fit(ev.program) {
        ev.program = cut;
        out.truncated_fields += 1;
    }
    out
}

/// `text` cut so that its lossy UTF-8 form fits [`MAX_FIELD_BYTES`]; `None` when it fits.
fn cut_to_fit(text: Text<'_>) -> Option<Text<'_>> {
    let bytes = text.0;
    // Each byte writes at most three (U+FFFD for an invalid one).
    if bytes.len().saturating_mul(3) <= MAX_FIELD_BYTES {
        return None;
    }
    let mut written = 0usize;
    let mut consumed = 0usize;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if written + c.len_utf8() > MAX_FIELD_BYTES {
                return Some(Text(&bytes[..consumed]));
            }
            written += c.len_utf8();
            consumed += c.len_utf8();
        }
        let invalid = chunk.invalid();
        if !invalid.is_empty() {
            if written + 3 > MAX_FIELD_BYTES {
                return Some(Text(&bytes[..consumed]));
            }
            written += 3;
            consumed += invalid.len();
        }
    }
    None
}

#[cfg(test)]
mod backlog_tests {
    use super::*;

    #[test]
    fn spool_backlog_header_round_trips_and_refuses_bad_values() {
        let b = SpoolBacklog {
            batches: 12,
            bytes: 3_456_789,
            lag_ms: 91_000,
        };
        let mut text = heapless::String::<96>::new();
        core::fmt::write(&mut text, format_args!("{b}")).unwrap();
        assert_eq!(text.as_str(), "batches=12, bytes=3456789, lag-ms=91000");
        assert_eq!(SpoolBacklog::parse(&text), Some(b));
        assert_eq!(
            SpoolBacklog::parse("lag-ms=1,future=x9,bytes=2 , batches=3"),
            Some(SpoolBacklog {
                batches: 3,
                bytes: 2,
                lag_ms: 1
            })
        );
        for bad in [
            "",
            "batches=1, bytes=2",
            "batches=1, bytes=2, lag-ms=-3",
            "batches=1, bytes=2, lag-ms=3, batches=4",
            "batches=1; bytes=2; lag-ms=3",
            "batches=99999999999999999999, bytes=2, lag-ms=3",
        ] {
            assert_eq!(SpoolBacklog::parse(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> EventFields<'static> {
        EventFields {
            timestamp_us: Some(1_795_848_570_000_000),
            kind: Some("event"),
            action: Some("auth_failure"),
            outcome: Some("failure"),
            host: Some("h"),
            user: Some("root"),
            target_user: None,
            process: Some("sshd"),
            method: Some("password"),
        }
    }

    #[test]
    fn a_real_event_passes_and_each_rule_is_checked() {
        assert_eq!(good().check(), Ok(()));
        let alert = EventFields {
            kind: Some("alert"),
            action: Some("some_future_rule"),
            ..good()
        };
        assert_eq!(alert.check(), Ok(()));
        for (ev, want) in [
            (
                EventFields {
                    timestamp_us: None,
                    ..good()
                },
                Violation::Missing(TIMESTAMP),
            ),
            (
                EventFields {
                    timestamp_us: Some(253_402_300_799_000_000), // 9999-12-31T23:59:59Z
                    ..good()
                },
                Violation::TimeOutOfRange,
            ),
            (
                EventFields {
                    timestamp_us: Some(0),
                    ..good()
                },
                Violation::TimeOutOfRange,
            ),
            (
                EventFields {
                    kind: Some("state"),
                    ..good()
                },
                Violation::NotAllowed(EVENT_KIND),
            ),
            (
                EventFields {
                    action: None,
                    ..good()
                },
                Violation::Missing(EVENT_ACTION),
            ),
            (
                EventFields {
                    action: Some("brute_force"),
                    ..good()
                },
                Violation::NotAllowed(EVENT_ACTION),
            ),
            (
                EventFields {
                    kind: Some("alert"),
                    action: Some("Bad Rule"),
                    ..good()
                },
                Violation::NotAllowed(EVENT_ACTION),
            ),
            (
                EventFields {
                    outcome: Some("maybe"),
                    ..good()
                },
                Violation::NotAllowed(EVENT_OUTCOME),
            ),
            (
                EventFields {
                    method: Some("telepathy"),
                    ..good()
                },
                Violation::NotAllowed(METHOD),
            ),
        ] {
            assert_eq!(ev.check(), Err(want), "{ev:?}");
        }
        let long = [b'a'; MAX_FIELD_BYTES + 1];
        let long = core::str::from_utf8(&long).unwrap();
        let ev = EventFields {
            user: Some(long),
            ..good()
        };
        assert_eq!(ev.check(), Err(Violation::TooLong(USER_NAME)));
        let ev = EventFields {
            user: Some(&long[..MAX_FIELD_BYTES]),
            ..good()
        };
        assert_eq!(ev.check(), Ok(()));
    }

    #[test]
    fn range_bounds_are_the_documented_dates() {
        let at = |y, m, d| Timestamp::from_secs(crate::time::days_from_civil(y, m, d) * 86_400);
        assert_eq!(at(2000, 1, 1).as_micros(), MIN_EVENT_TIME_US);
        assert_eq!(at(2100, 1, 1).as_micros(), MAX_EVENT_TIME_US);
        assert!(time_in_range(MIN_EVENT_TIME_US));
        assert!(!time_in_range(MAX_EVENT_TIME_US));
    }

    #[test]
    fn conform_keeps_the_original_time_and_cuts_long_fields() {
        let received = Timestamp::from_secs(1_795_848_570);
        let mut ev = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        ev.timestamp = Some(Timestamp::from_secs(253_402_300_799));
        let c = conform(&mut ev, received);
        assert_eq!(ev.timestamp, Some(received));
        assert_eq!(
            c.original_timestamp,
            Some(Timestamp::from_secs(253_402_300_799))
        );

        let mut ev = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        assert_eq!(conform(&mut ev, received).original_timestamp, None);
        assert_eq!(ev.timestamp, Some(received), "a missing time is required");

        // Invalid bytes count three each; a cut never passes the bound.
        let long = [0xffu8; MAX_FIELD_BYTES];
        let mut ev = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        ev.timestamp = Some(received);
        ev.user = Some(Text(&long));
        ev.program = Text(b"sshd");
        let c = conform(&mut ev, received);
        assert_eq!(c.truncated_fields, 1);
        assert_eq!(c.original_timestamp, None);
        let user = ev.user.unwrap();
        assert_eq!(user.0.len(), MAX_FIELD_BYTES / 3);
        let mut ok = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
        let fits = [b'x'; MAX_FIELD_BYTES];
        ok.user = Some(Text(&fits));
        ok.timestamp = Some(received);
        assert_eq!(conform(&mut ok, received).truncated_fields, 0);
    }

    #[test]
    fn encodings_round_trip_their_header() {
        for e in [Encoding::Identity, Encoding::Zstd, Encoding::Gzip] {
            assert_eq!(Encoding::from_header(e.header()), Some(e));
        }
        assert_eq!(Encoding::from_header(Some(" ZSTD ")), Some(Encoding::Zstd));
        assert_eq!(Encoding::from_header(Some("x-gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")), None);
        assert_eq!(Encoding::from_header(Some("gzip, zstd")), None);
        assert!(is_stream("0b6f4c8e-6c6a-4f0e-9b7e-2f6d1c0a9e11"));
        assert!(!is_stream(""));
        assert!(!is_stream("a b"));
        assert_eq!(parse_seq("9223372036854775807"), Some(MAX_SEQ));
        assert_eq!(parse_seq("9223372036854775808"), None);
        assert_eq!(parse_seq("-1"), None);
        for b in [Body::Ndjson, Body::Compact] {
            assert_eq!(Body::from_content_type(Some(b.content_type())), Some(b));
        }
        assert_eq!(
            Body::from_content_type(Some("Application/Vnd.Authtrail.Batch; v=1")),
            Some(Body::Compact)
        );
        assert_eq!(Body::from_content_type(None), Some(Body::Ndjson));
        assert_eq!(Body::from_content_type(Some("text/csv")), None);
    }
}
