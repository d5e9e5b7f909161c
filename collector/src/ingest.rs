//! From a request body to a [`Batch`]: bounded decompression, then NDJSON decoding.
//!
//! No I/O and no clock: the server hands in bytes and gets a batch or a [`DecodeError`] that
//! maps to one HTTP status. Errors never carry a copy of the body (an event can hold a password
//! typed as a user name); they name the line and what is wrong with it.

use std::io::{self, Read};

use serde_json::{Map, Value};

/// Largest zstd window accepted, as a power of two: 2^24 = 16 MiB. A frame asking for more is
/// refused (400) instead of making the decoder allocate it. Agents compress batches of about
/// 1 MiB, whose frames need far less.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The `Content-Encoding` of a batch.
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
    /// From the header value (absent means identity). `None` for anything else, including a
    /// list of several codings.
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "identity") => Some(Encoding::Identity),
            Some("zstd") => Some(Encoding::Zstd),
            Some("gzip" | "x-gzip") => Some(Encoding::Gzip),
            Some(_) => None,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The decompressed body passed the bound (413).
    #[error("the decompressed body is larger than {limit} bytes")]
    TooLarge {
        /// `max-decompressed-bytes`.
        limit: u64,
    },
    /// The compressed stream is corrupt or truncated (400).
    #[error("cannot decompress the body ({encoding}): {reason}")]
    Corrupt {
        /// `zstd` or `gzip`.
        encoding: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A line that is not an acceptable event (400).
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number in the decompressed body.
        line: usize,
        /// What is wrong; never the line's text.
        reason: String,
    },
}

/// Decompresses `body` with a streaming decoder that stops reading once more than `max`
/// bytes have come out, so a small bomb costs at most `max` bytes of memory.
///
/// An empty body is an empty batch (a heartbeat) whatever the encoding says: a zero-byte zstd
/// or gzip stream is not valid, but an agent may well label its heartbeats like its batches.
pub fn decompress(encoding: Encoding, body: &[u8], max: u64) -> Result<Vec<u8>, DecodeError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let corrupt = |encoding: &'static str| {
        move |e: io::Error| DecodeError::Corrupt {
            encoding,
            reason: e.to_string(),
        }
    };
    let out = match encoding {
        Encoding::Identity => {
            if body.len() as u64 > max {
                return Err(DecodeError::TooLarge { limit: max });
            }
            return Ok(body.to_vec());
        }
        Encoding::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(body).map_err(corrupt("zstd"))?;
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(corrupt("zstd"))?;
            read_bounded(decoder, max).map_err(corrupt("zstd"))?
        }
        Encoding::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(body), max).map_err(corrupt("gzip"))?
        }
    };
    if out.len() as u64 > max {
        return Err(DecodeError::TooLarge { limit: max });
    }
    Ok(out)
}

/// Reads at most `max + 1` bytes: one more than allowed tells "too large" from "exactly max".
fn read_bounded(reader: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

/// One login event, with the columns the store indexes pulled out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `@timestamp`, microseconds since the Unix epoch.
    pub timestamp_us: i64,
    /// `host.hostname`.
    pub host: Option<String>,
    /// `event.kind` (`event`, `alert`).
    pub kind: Option<String>,
    /// `event.action`.
    pub action: Option<String>,
    /// `event.outcome`.
    pub outcome: Option<String>,
    /// `user.name`.
    pub user: Option<String>,
    /// `user.target.name`.
    pub target_user: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// `source.port`.
    pub source_port: Option<u16>,
    /// `process.name`.
    pub process: Option<String>,
    /// `authtrail.method`.
    pub method: Option<String>,
    /// The whole line, as sent (valid JSON).
    pub doc: String,
}

/// A host-state document (`event.kind = "state"`): the agent's heartbeat with host facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// `host.hostname`.
    pub hostname: Option<String>,
    /// The whole line, as sent.
    pub doc: String,
}

/// A decoded batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Login events and alerts, in body order.
    pub events: Vec<Event>,
    /// The last host-state document, if the batch carried any.
    pub state: Option<HostState>,
}

impl Batch {
    /// The host name to record for the agent: the state document's, else the last event's.
    pub fn hostname(&self) -> Option<&str> {
        self.state
            .as_ref()
            .and_then(|s| s.hostname.as_deref())
            .or_else(|| self.events.iter().rev().find_map(|e| e.host.as_deref()))
    }
}

/// Decodes an NDJSON body: one JSON object per line, `\n` or `\r\n` line ends; blank lines are
/// skipped. An empty body is a heartbeat-only batch.
pub fn parse_ndjson(body: &[u8]) -> Result<Batch, DecodeError> {
    let mut batch = Batch::default();
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let err = |reason: String| DecodeError::Line { line, reason };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = std::str::from_utf8(raw).map_err(|e| {
            err(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to()
            ))
        })?;
        // Into a `Value` first: serde's type errors would quote the offending value.
        let value: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let Value::Object(doc) = value else {
            return Err(err(format!(
                "expected a JSON object, found {}",
                kind(&value)
            )));
        };
        let field = |path: &'static str| str_at(&doc, path).map_err(&err);
        if field("event.kind")?.as_deref() == Some("state") {
            batch.state = Some(HostState {
                hostname: field("host.hostname")?,
                doc: text.trim().to_owned(),
            });
            continue;
        }
        let timestamp =
            field("@timestamp")?.ok_or_else(|| err("`@timestamp` is missing".to_owned()))?;
        let timestamp_us = timestamp
            .parse::<jiff::Timestamp>()
            .map_err(|_| err("`@timestamp` is not an RFC 3339 time".to_owned()))?
            .as_microsecond();
        let source_port = match lookup(&doc, "source.port") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| err("`source.port` is not a port number".to_owned()))?,
            ),
            Some(_) => return Err(err("`source.port` must be a number".to_owned())),
        };
        let source_ip = field("source.ip")?;
        if let Some(ip) = &source_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(err("`source.ip` is not an IP address".to_owned()));
        }
        batch.events.push(Event {
            timestamp_us,
            host: field("host.hostname")?,
            kind: field("event.kind")?,
            action: field("event.action")?,
            outcome: field("event.outcome")?,
            user: field("user.name")?,
            target_user: field("user.target.name")?,
            source_ip,
            source_port,
            process: field("process.name")?,
            method: field("authtrail.method")?,
            doc: text.trim().to_owned(),
        });
    }
    Ok(batch)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value at a dotted path (`user.target.name`); `@timestamp` is a top-level key.
fn lookup<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A string field: absent or null is `None`, another type is an error.
fn str_at(doc: &Map<String, Value>, path: &'static str) -> Result<Option<String>, String> {
    match lookup(doc, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{path}` must be a string, found {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const FIXTURE: &str =
        include_str!("../../agent-core/testdata/debian12-traditional/sshd.expected.ndjson");

    fn fixture_events() -> String {
        FIXTURE
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn real_agent_events_decode() {
        let body = fixture_events();
        let n = body.lines().count();
        assert!(n > 10);
        let batch = parse_ndjson(body.as_bytes()).unwrap();
        assert_eq!(batch.events.len(), n);
        let e = &batch.events[1];
        assert_eq!(e.action.as_deref(), Some("auth_success"));
        assert_eq!(e.user.as_deref(), Some("atalice"));
        assert_eq!(e.source_ip.as_deref(), Some("127.0.0.51"));
        assert_eq!(e.source_port, Some(52687));
        assert_eq!(e.method.as_deref(), Some("publickey"));
        assert_eq!(e.host.as_deref(), Some("testhost"));
        assert_eq!(batch.hostname(), Some("testhost"));
        assert_eq!(
            e.timestamp_us,
            "2026-11-28T08:06:35Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_microsecond()
        );
    }

    #[test]
    fn empty_body_is_a_heartbeat() {
        assert_eq!(parse_ndjson(b"").unwrap(), Batch::default());
        assert_eq!(parse_ndjson(b"\n\r\n").unwrap(), Batch::default());
    }

    #[test]
    fn state_documents_are_kept_apart() {
        let body = b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"event\":{\"kind\":\"state\"},\"host\":{\"hostname\":\"h1\",\"os\":{\"name\":\"Debian\"}}}\n";
        let batch = parse_ndjson(body).unwrap();
        assert!(batch.events.is_empty());
        assert_eq!(batch.hostname(), Some("h1"));
    }

    #[test]
    fn malformed_line_is_named_and_not_echoed() {
        let body = format!("{}{{\"secret-password\n", fixture_events());
        let line = body.lines().count();
        let e = parse_ndjson(body.as_bytes()).unwrap_err();
        let DecodeError::Line { line: got, reason } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*got, line);
        assert!(!reason.contains("secret"), "{reason}");
        for (body, want) in [
            (
                &b"\"just-a-string-password\"\n"[..],
                "expected a JSON object, found a string",
            ),
            (b"[1]\n", "found an array"),
            (b"{\"event\":{}}\n", "`@timestamp` is missing"),
            (b"{\"@timestamp\":\"yesterday\"}\n", "not an RFC 3339"),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"user\":{\"name\":7}}",
                "`user.name` must be a string",
            ),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"source\":{\"port\":70000}}",
                "not a port",
            ),
            (
                b"{\"@timestamp\":\"2026-01-01T00:00:00Z\",\"source\":{\"ip\":\"1.2.3\"}}",
                "not an IP",
            ),
            (b"\xff\xfe\n", "invalid UTF-8"),
        ] {
            let e = parse_ndjson(body).unwrap_err().to_string();
            assert!(e.starts_with("line 1: "), "{e}");
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("password"), "{e}");
        }
    }

    #[test]
    fn decompress_each_encoding_and_bound() {
        let raw = fixture_events().into_bytes();
        let z = zstd::encode_all(&raw[..], 3).unwrap();
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(&raw).unwrap();
        let g = g.finish().unwrap();
        for (enc, body) in [
            (Encoding::Identity, &raw),
            (Encoding::Zstd, &z),
            (Encoding::Gzip, &g),
        ] {
            assert_eq!(decompress(enc, body, raw.len() as u64).unwrap(), raw);
            assert_eq!(
                decompress(enc, body, raw.len() as u64 - 1),
                Err(DecodeError::TooLarge {
                    limit: raw.len() as u64 - 1
                })
            );
        }
        // Truncated streams are corrupt, not short batches.
        for (enc, body) in [(Encoding::Zstd, &z), (Encoding::Gzip, &g)] {
            let cut = &body[..body.len() - 5];
            assert!(
                matches!(
                    decompress(enc, cut, 1 << 20),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn empty_body_is_empty_in_any_encoding() {
        for enc in [Encoding::Identity, Encoding::Zstd, Encoding::Gzip] {
            assert_eq!(decompress(enc, b"", 0), Ok(Vec::new()));
        }
    }

    #[test]
    fn encoding_header() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some("ZSTD")), Some(Encoding::Zstd));
        assert_eq!(Encoding::from_header(Some("gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("br")), None);
        assert_eq!(Encoding::from_header(Some("gzip, zstd")), None);
    }
}
