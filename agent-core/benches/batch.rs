//! Compact batch body speed per event: encoding the agent's ECS NDJSON (what the pipeline does
//! for each event) and decoding it (what the collector does for each body, rendering and the
//! canonical check), on a generated auth log rendered as the agent renders it, in batches of
//! 5,000 events. `cargo bench -p agent-core --bench batch`; `AUTHTRAIL_BENCH_LINES` changes
//! the size.

use std::hint::black_box;

use agent_core::batch::{BatchEncoder, decode};
use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{Parsed, Text, Timestamp, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod common;

/// Events in one bench batch.
const BATCH_EVENTS: usize = 5_000;

/// The agent's ECS rendering of a generated log, one document a line.
fn documents(lines: u64) -> Vec<Vec<u8>> {
    let data = common::two_host_log(lines);
    let now = Timestamp::from_secs(loggen::DEFAULT_START + 86_400);
    let ctx = Context::new(now);
    let mut docs = Vec::new();
    let mut json = String::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &data) {
        let line = &data[start..end];
        if let Parsed::Event(mut ev) = parse_line(line, &ctx) {
            let conformed = agent_core::wire::conform(&mut ev, now);
            let env = Envelope {
                hostname: Some(Text(b"agent-host")),
                host_id: Some("4c4c4544003957108052b4c04f384833"),
                agent_id: Some("0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"),
                agent_version: Some("0.1.0"),
                provider: Some("file"),
                sequence: Some(docs.len() as u64),
                log_path: Some(Text(b"/var/log/auth.log")),
                log_offset: Some(start as u64),
                message: Some(Text(line)),
                original_timestamp: conformed.original_timestamp,
            };
            json.clear();
            write_event(&mut json, &ev, &env).expect("a String takes anything");
            docs.push(json.as_bytes().to_vec());
        }
        start = end + 1;
    }
    docs
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
    let docs = documents(lines);
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
