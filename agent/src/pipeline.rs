//! The pipeline: chunks from the sources in, ECS events out to the sink, checkpoints advanced
//! only after the sink commits.
//!
//! ```text
//! source threads --Chunk--> [bounded channel] --> Renderer (parse, detect, ECS JSON) --> Sink
//!                                                        |                              |
//!                                                        +--- pending positions --commit-+--> Checkpoints
//! ```
//!
//! **Architecture Invariant:** a stream's checkpoint never moves past a record whose events the
//! sink has not made durable. The pipeline keeps the end positions of the chunks it has rendered
//! but not committed; it moves them into the checkpoint store only after `Sink::commit` returns
//! `Ok`. A failed commit keeps them pending and the commit is retried.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use agent_core::ecs::{self, Envelope};
use agent_core::syslog::Context;
use agent_core::{LoginEvent, Parsed, Text, Timestamp, parse_line, parse_message};

use crate::source::{Chunk, JournalFields, Payload, Position, StreamKey};
use crate::timezone::Zone;

/// Fixed facts stamped on every event.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    /// `host.hostname` for lines without a host field.
    pub hostname: Option<String>,
    /// `host.id`.
    pub host_id: Option<String>,
    /// `agent.id`.
    pub agent_id: Option<String>,
    /// `agent.version`.
    pub agent_version: Option<String>,
}

/// Counters per configured source, for `authtrail status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceCounters {
    /// Records read (lines, journal entries, utmp records).
    pub records: u64,
    /// Events produced.
    pub events: u64,
    /// Records from watched programs that no parser recognised, or with no syslog header.
    pub rejected: u64,
    /// Lines cut at the line-length bound.
    pub truncated: u64,
}

/// Turns chunks into rendered events. Keeps no state but the previous line of each stream (for
/// `last message repeated`) and the event sequence.
#[derive(Debug)]
pub struct Renderer {
    stamp: Stamp,
    zone: Zone,
    include_message: bool,
    previous: HashMap<StreamKey, Vec<u8>>,
    sequence: u64,
    json: String,
    detector: Option<Box<agent_core::detect::DefaultDetector>>,
    /// The detector's answer for the current event, kept from one event to the next.
    alerts_buf: agent_core::detect::Alerts,
    /// Per source.
    pub counters: HashMap<Arc<str>, SourceCounters>,
    /// Alerts raised by the detector.
    pub alerts: u64,
}

/// One rendered event, borrowed from the renderer for the duration of the callback.
#[derive(Debug)]
pub struct Rendered<'a> {
    /// The event.
    pub event: &'a LoginEvent<'a>,
    /// Its ECS JSON, one line, no newline.
    pub json: &'a [u8],
    /// True for a detection alert (raised by the event before it), which the sink ships at the
    /// next commit.
    pub alert: bool,
}

impl Renderer {
    /// A renderer stamping `stamp` on every event; zone-less timestamps are read in `zone`.
    pub fn new(stamp: Stamp, zone: Zone, include_message: bool, first_sequence: u64) -> Self {
        Renderer {
            stamp,
            zone,
            include_message,
            previous: HashMap::new(),
            sequence: first_sequence,
            json: String::with_capacity(2048),
            detector: None,
            alerts_buf: agent_core::detect::Alerts::new(),
            counters: HashMap::new(),
            alerts: 0,
        }
    }

    /// Runs the edge detections on every event from now on.
    pub fn with_detector(mut self, config: agent_core::detect::DetectConfig) -> Self {
        self.detector = Some(Box::new(agent_core::detect::Detector::new(config)));
        self
    }

    /// The next `event.sequence` to be given out.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The detector's memory ([`agent_core::detect::Detector::save_state`]); `None` when
    /// detections are off.
    pub fn detector_memory(&self) -> Option<Vec<u8>> {
        self.detector.as_deref().map(|d| d.state_bytes())
    }

    /// Applies a new detection configuration (`None`: detections off). What the detector has
    /// counted and learnt is kept: the new one starts with the old one's memory.
    pub fn reconfigure_detector(&mut self, config: Option<agent_core::detect::DetectConfig>) {
        let memory = self.detector_memory();
        self.detector = config.map(|c| Box::new(agent_core::detect::Detector::new(c)));
        if let (Some(d), Some(memory)) = (self.detector.as_deref_mut(), memory) {
            // Same tables and format, so it cannot be refused; if it were, the detector would
            // start empty, as it did before memories were kept.
            let _ = d.restore_state(&memory);
        }
    }

    /// Gives the detector the memory [`Renderer::detector_memory`] returned (in an earlier
    /// process); `Ok(false)` when detections are off. On error the detector starts empty.
    pub fn restore_detector_memory(
        &mut self,
        memory: &[u8],
    ) -> Result<bool, agent_core::detect::StateError> {
        match self.detector.as_deref_mut() {
            Some(d) => d.restore_state(memory).map(|()| true),
            None => Ok(false),
        }
    }

    /// Parses every record of `chunk` and calls `emit` for each event, in order.
    pub fn render<E>(
        &mut self,
        chunk: &Chunk,
        now: Timestamp,
        emit: impl FnMut(Rendered<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // The stream's previous line is looked up and stored once per chunk, not per line.
        let mut last = None;
        let rendered = self.render_records(chunk, now, &mut last, emit);
        if let Some(line) = last {
            let prev = self.previous.entry(chunk.stream.clone()).or_default();
            prev.clear();
            prev.extend_from_slice(line);
        }
        rendered
    }

    /// [`Renderer::render`] but for the previous line: `last` is set to each line of the chunk
    /// that gave an event (not a repeat), for `last message repeated` and for the caller to keep.
    fn render_records<'c, E>(
        &mut self,
        chunk: &'c Chunk,
        now: Timestamp,
        last: &mut Option<&'c [u8]>,
        mut emit: impl FnMut(Rendered<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let ctx = Context {
            reference: now,
            utc_offset: self.zone.offset_at(now),
        };
        let provider = match chunk.payload {
            Payload::SyslogLines => "file",
            Payload::Journal => "journald",
            Payload::Utmp => "utmp",
        };
        let path_bytes: Option<Vec<u8>> = chunk
            .path
            .as_deref()
            .map(|p: &PathBuf| p.as_os_str().as_encoded_bytes().to_vec());
        let utmp_kind = chunk
            .path
            .as_deref()
            .and_then(|p| p.file_name())
            .map(|n| agent_core::utmp::UtmpFile::from_file_name(n.as_encoded_bytes()));
        let counters = self.counters.entry(chunk.source.clone()).or_default();
        for record in &chunk.records {
            let bytes = chunk.bytes(record);
            counters.records += 1;
            if record.truncated {
                counters.truncated += 1;
            }
            let mut repeat: Option<(u32, Timestamp)> = None;
            let parsed = match chunk.payload {
                Payload::SyslogLines => parse_line(bytes, &ctx),
                Payload::Journal => {
                    let fields = record.journal.as_ref();
                    journal_event(bytes, fields)
                }
                Payload::Utmp => match agent_core::utmp::parse_record(bytes) {
                    Ok(rec) => match utmp_kind.and_then(|k| agent_core::utmp::to_event(&rec, k)) {
                        Some(ev) => Parsed::Event(ev),
                        None => Parsed::Noise {
                            program: Text(b"utmp"),
                        },
                    },
                    Err(_) => Parsed::Malformed(agent_core::syslog::HeaderError::Empty),
                },
            };
            let previous_line;
            let parsed = match parsed {
                Parsed::RepeatLast { count, header } => {
                    repeat = Some((count, header.timestamp));
                    // Earlier in this chunk, else kept from an earlier chunk (copied: the
                    // renderer is borrowed again below).
                    match *last {
                        Some(prev) => parse_line(prev, &ctx),
                        None => {
                            previous_line = self.previous.get(&chunk.stream).cloned();
                            match &previous_line {
                                Some(prev) => parse_line(prev, &ctx),
                                None => Parsed::Noise { program: Text(b"") },
                            }
                        }
                    }
                }
                other => other,
            };
            let mut event = match parsed {
                Parsed::Event(ev) => ev,
                Parsed::Unrecognised { .. } | Parsed::Malformed(_) => {
                    if !bytes.trim_ascii().is_empty() {
                        counters.rejected += 1;
                    }
                    continue;
                }
                Parsed::Noise { .. } | Parsed::Foreign { .. } | Parsed::RepeatLast { .. } => {
                    continue;
                }
            };
            if let Some((count, ts)) = repeat {
                event.count = event.count.saturating_mul(count);
                event.timestamp = Some(ts);
            } else if chunk.payload == Payload::SyslogLines {
                *last = Some(bytes);
            }
            counters.events += 1;
            // Never emit what the wire contract refuses (a time out of range is the time of
            // receipt, the line's own kept beside it).
            let conformed = agent_core::wire::conform(&mut event, now);
            let envelope = Envelope {
                hostname: self.stamp.hostname.as_deref().map(Text::from),
                host_id: self.stamp.host_id.as_deref(),
                agent_id: self.stamp.agent_id.as_deref(),
                agent_version: self.stamp.agent_version.as_deref(),
                provider: Some(provider),
                sequence: Some(self.sequence),
                log_path: path_bytes.as_deref().map(Text),
                log_offset: record.offset,
                message: (self.include_message && chunk.payload != Payload::Utmp)
                    .then_some(Text(bytes)),
                original_timestamp: conformed.original_timestamp,
            };
            self.sequence += 1;
            self.json.clear();
            // Writing into a String cannot fail.
            let _ = ecs::write_event(&mut self.json, &event, &envelope);
            emit(Rendered {
                event: &event,
                json: self.json.as_bytes(),
                alert: false,
            })?;
            if let Some(detector) = self.detector.as_deref_mut() {
                // The alerts cite events by their `event.sequence` (this one's is in the envelope).
                let seq = envelope.sequence.unwrap_or_default();
                detector.observe_into(&event, seq, &mut self.alerts_buf);
                for alert in &self.alerts_buf {
                    let envelope = Envelope {
                        // The alert is about the host whose log line raised it.
                        hostname: event.hostname.or(envelope.hostname),
                        sequence: Some(self.sequence),
                        log_path: None,
                        log_offset: None,
                        message: None,
                        original_timestamp: None,
                        ..envelope
                    };
                    self.sequence += 1;
                    self.alerts += 1;
                    self.json.clear();
                    let _ = ecs::write_alert(&mut self.json, alert, &envelope);
                    emit(Rendered {
                        event: &event,
                        json: self.json.as_bytes(),
                        alert: true,
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// A journald entry: the bare message plus the fields journald keeps beside it.
fn journal_event<'a>(message: &'a [u8], fields: Option<&'a JournalFields>) -> Parsed<'a> {
    let Some(f) = fields else {
        return Parsed::Malformed(agent_core::syslog::HeaderError::NoTag);
    };
    let mut parsed = parse_message(Text::from(f.program.as_str()), f.pid, message);
    if let Parsed::Event(ev) = &mut parsed {
        ev.timestamp = f.realtime_us.map(Timestamp::from_micros);
        ev.hostname = f.hostname.as_deref().map(Text::from);
    }
    parsed
}

/// Chunk end positions rendered but not yet committed, oldest first.
#[derive(Debug, Default)]
pub struct Pending {
    positions: Vec<(StreamKey, Position, Option<Arc<PathBuf>>)>,
}

impl Pending {
    /// Remembers where `chunk` ends.
    pub fn push(&mut self, chunk: &Chunk) {
        self.positions
            .push((chunk.stream.clone(), chunk.end.clone(), chunk.path.clone()));
    }

    /// True when nothing waits for a commit.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Hands out the positions after a successful commit, latest per stream.
    pub fn take(&mut self) -> Vec<(StreamKey, Position, Option<Arc<PathBuf>>)> {
        let mut latest: Vec<(StreamKey, Position, Option<Arc<PathBuf>>)> = Vec::new();
        for (key, pos, path) in self.positions.drain(..) {
            match latest.iter_mut().find(|(k, _, _)| *k == key) {
                Some(slot) => {
                    slot.1 = pos;
                    slot.2 = path;
                }
                None => latest.push((key, pos, path)),
            }
        }
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Fingerprint, Record};

    fn chunk(stream: u64, lines: &[&str]) -> Chunk {
        let mut data = Vec::new();
        let mut records = Vec::new();
        for line in lines {
            let start = data.len() as u32;
            data.extend_from_slice(line.as_bytes());
            records.push(Record {
                start,
                end: data.len() as u32,
                offset: Some(u64::from(start)),
                truncated: false,
                journal: None,
            });
        }
        Chunk {
            source: Arc::from("test"),
            stream: StreamKey::File {
                fingerprint: Fingerprint {
                    dev: 1,
                    ino: stream,
                    head: 7,
                },
            },
            path: None,
            payload: Payload::SyslogLines,
            end: Position::Offset(data.len() as u64),
            data,
            records,
        }
    }

    /// (user, count, seconds of the timestamp) of every event rendered from `chunk`.
    fn render(r: &mut Renderer, chunk: &Chunk) -> Vec<(String, u32, i64)> {
        let mut out = Vec::new();
        let now = Timestamp::from_secs(1_795_867_200);
        r.render(chunk, now, |e| {
            let user = e.event.user.map(|u| u.to_string()).unwrap_or_default();
            let secs = e.event.timestamp.map_or(0, |t| t.secs);
            out.push((user, e.event.count, secs));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_poison_timestamp_becomes_the_receipt_time_and_keeps_the_original() {
        // `9999-12-31T23:59:59` parses, but the wire contract refuses it: the event goes out
        // at the time it was read, with the line's own time beside it.
        let mut r = Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0);
        let lines = [
            "9999-12-31T23:59:59 web1 sshd[42]: Failed password for root from 203.0.113.9 \
             port 50522 ssh2",
            "2026-11-28T06:49:10 web1 sshd[42]: Failed password for bob from 203.0.113.9 \
             port 50522 ssh2",
        ];
        let now = Timestamp::from_secs(1_795_867_200);
        let mut docs = Vec::new();
        r.render(&chunk(1, &lines), now, |e| {
            docs.push(serde_json::from_slice::<serde_json::Value>(e.json).unwrap());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["@timestamp"], "2026-11-28T12:00:00Z");
        assert_eq!(
            docs[0]["authtrail"]["original_timestamp"],
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(docs[1]["@timestamp"], "2026-11-28T06:49:10Z");
        assert!(docs[1]["authtrail"].get("original_timestamp").is_none());
    }

    #[test]
    fn last_message_repeated_repeats_the_line_before_it_in_and_across_chunks() {
        let failed = |user: &str, second: u32| {
            format!(
                "Nov 28 06:49:{second:02} web1 sshd[42]: Failed password for {user} from \
                 203.0.113.9 port 50522 ssh2"
            )
        };
        let repeated = |n: u32, second: u32| {
            format!("Nov 28 06:49:{second:02} web1 last message repeated {n} times")
        };
        let mut r = Renderer::new(Stamp::default(), Zone::Fixed(0), false, 0);
        let first = [
            failed("root", 10),
            repeated(2, 11),
            "Nov 28 06:49:12 web1 CRON[7]: noise".to_owned(),
            failed("alice", 13),
        ];
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        let t = |s: i64| 1_795_848_540 + s;
        assert_eq!(
            render(&mut r, &chunk(1, &first)),
            [
                ("root".to_owned(), 1, t(10)),
                ("root".to_owned(), 2, t(11)),
                ("alice".to_owned(), 1, t(13)),
            ]
        );
        // The next chunk of the stream repeats the last line of the one before.
        assert_eq!(
            render(&mut r, &chunk(1, &[&repeated(3, 14), &repeated(4, 15)])),
            [
                ("alice".to_owned(), 3, t(14)),
                ("alice".to_owned(), 4, t(15)),
            ]
        );
        // Another stream has no line before its first.
        assert_eq!(render(&mut r, &chunk(2, &[&repeated(5, 16)])), []);
        assert_eq!(r.sequence(), 5);
    }
}
