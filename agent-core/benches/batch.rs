//! Compact batch body speed per event: encoding the agent's ECS NDJSON (what the pipeline does
//! for each event) and decoding it (what the collector does for each body, rendering and the
//! canonical check), on a generated auth log rendered as the agent renders it, in batches of
//! 5,000 events. `cargo bench -p agent-core --bench batch`; `AUTHTRAIL_BENCH_LINES` changes
//! the size.

use std::hint::black_box;

use agent_core::batch::{BatchEncoder, Holes, decode};
use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{LoginEvent, Parsed, Text, Timestamp, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod common;

/// Events in one bench batch.
const BATCH_EVENTS: usize = 5_000;

/// The agent's events of a generated log, with their envelopes, as the pipeline makes them.
fn events(data: &[u8]) -> Vec<(LoginEvent<'_>, Envelope<'_>)> {
    let now = Timestamp::from_secs(loggen::DEFAULT_START + 86_400);
    let ctx = Context::new(now);
    let mut events = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..end];
        if let Parsed::Event(mut ev) = parse_line(line, &ctx) {
            let conformed = agent_core::wire::conform(&mut ev, now);
            let env = Envelope {
                hostname: Some(Text(b"agent-host")),
                host_id: Some("4c4c4544003957108052b4c04f384833"),
                agent_id: Some("0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"),
                agent_version: Some("0.1.0"),
                provider: Some("file"),
                sequence: Some(events.len() as u64),
                log_path: Some(Text(b"/var/log/auth.log")),
                log_offset: Some(start as u64),
                message: Some(Text(line)),
                original_timestamp: conformed.original_timestamp,
            };
            events.push((ev, env));
        }
        start = end + 1;
    }
    events
}

/// The agent's ECS rendering of `events`, one document a line.
fn documents(events: &[(LoginEvent<'_>, Envelope<'_>)]) -> Vec<Vec<u8>> {
    let mut json = String::new();
    events
        .iter()
        .map(|(ev, env)| {
            json.clear();
            write_event(&mut json, ev, env).expect("a String takes anything");
            json.as_bytes().to_vec()
        })
        .collect()
}

/// What the pipeline and the open batch do per event, a batch at a time: render the ECS
/// JSON, then add it to an NDJSON batch, or to a compact body from its text, or to a compact
/// body from the writer's holes. Returns the bodies' total length.
fn render_and_batch(events: &[(LoginEvent<'_>, Envelope<'_>)], how: How) -> usize {
    let mut json = String::new();
    let mut holes = Holes::new();
    let mut enc = BatchEncoder::new();
    let mut body = Vec::new();
    let mut total = 0;
    for chunk in events.chunks(BATCH_EVENTS) {
        body.clear();
        for (ev, env) in chunk {
            json.clear();
            match how {
                How::Ndjson => {
                    write_event(&mut json, ev, env).expect("a String takes anything");
                    body.extend_from_slice(json.as_bytes());
                    body.push(b'\n');
                }
                How::CompactFromText => {
                    write_event(&mut json, ev, env).expect("a String takes anything");
                    enc.push(json.as_bytes())
                        .expect("the agent's documents encode");
                }
                How::CompactFromHoles => {
                    holes
                        .write_event(&mut json, ev, env)
                        .expect("a String takes anything");
                    enc.push_with(json.as_bytes(), &holes)
                        .expect("the agent's documents encode");
                }
            }
        }
        if how != How::Ndjson {
            enc.finish(&mut body);
        }
        total += body.len();
    }
    total
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Ndjson,
    CompactFromText,
    CompactFromHoles,
}

/// Encodes every document, a batch at a time, as the agent's open batch does.
fn encode_all(docs: &[Vec<u8>], bodies: &mut Vec<Vec<u8>>) {
    bodies.clear();
    for chunk in docs.chunks(BATCH_EVENTS) {
        let mut enc = BatchEncoder::new();
        for doc in chunk {
            enc.push(doc).expect("the agent's documents encode");
        }
        let mut body = Vec::new();
        enc.finish(&mut body);
        bodies.push(body);
    }
}

fn bench(c: &mut Criterion) {
    let lines: u64 = std::env::var("AUTHTRAIL_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let data = common::two_host_log(lines);
    let events = events(&data);
    let docs = documents(&events);
    let mut bodies = Vec::new();
    encode_all(&docs, &mut bodies);
    let mut group = c.benchmark_group("batch_events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(docs.len() as u64));
    let mut scratch = Vec::new();
    group.bench_function("encode", |b| {
        b.iter(|| encode_all(black_box(&docs), &mut scratch))
    });
    let mut out = Vec::new();
    group.bench_function("decode", |b| {
        b.iter(|| {
            for body in &bodies {
                out.clear();
                black_box(decode(body, usize::MAX, &mut out).expect("the bodies decode"));
            }
        })
    });
    group.finish();
    let mut group = c.benchmark_group("render_and_batch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, how) in [
        ("ndjson", How::Ndjson),
        ("compact_from_text", How::CompactFromText),
        ("compact_from_holes", How::CompactFromHoles),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(render_and_batch(black_box(&events), how)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
